// A validating, memory-mapped reader for GGUF v2/v3 files.

/// A GGUF file opened read-only through a memory map. `init` parses and validates the whole
/// header and tensor table; tensor data is touched only when a tensor is requested.
///
/// Validation (each failure is a `GGUFError` naming the file and the problem):
/// - magic "GGUF"; version 2 or 3 (v1 and big-endian files are refused with a clear message);
/// - every count (metadata pairs, tensors, array elements) is checked against the bytes that
///   remain before anything is allocated, so a hostile header claiming 2^60 entries fails fast;
/// - strings are valid UTF-8 and lie inside the file; value types are known; bools are 0/1;
///   arrays (including arrays of arrays) nest at most `maxArrayDepth` deep; keys are unique;
/// - `general.alignment` (default 32) is a positive power-of-two integer;
/// - tensor names are unique, have at most 4 dimensions, non-negative dimensions whose product
///   (and byte size, computed from the ggml block layout) does not overflow, ne[0] a multiple
///   of the block size, data offsets aligned, inside the file, and not overlapping.
///
/// Metadata is decoded eagerly into `GGUFValue`s: counts are bounded by the file size, but a
/// file that is mostly one huge numeric array costs a few dozen bytes per element in memory
/// (real files: tokenizer arrays of at most a few hundred thousand entries).
///
/// Unknown ggml type ids: the file still opens (its metadata and other tensors stay usable,
/// e.g. for inspection), because ggml adds types over time. Such a tensor's extent is unknown,
/// so only its offset is checked; `dequantize`/`rawData` on it throw `.unknownTensorType`
/// naming the tensor and the id, and `tensor(_:)` returns nil. Known-but-undecodable types
/// (K-quants, I-quants, ...) are fully validated and throw `.unsupportedTensorType` on decode.
public final class GGUFFile: TensorSource, @unchecked Sendable {
    /// Deepest array nesting accepted (real files use 1; the bound keeps recursion shallow).
    public static let maxArrayDepth = 8
    /// Alignment used when `general.alignment` is absent.
    public static let defaultAlignment = 32

    public let path: String
    /// 2 or 3.
    public let version: Int
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    /// Tensor infos in file order.
    public let tensorInfos: [GGUFTensorInfo]
    /// The data alignment in bytes.
    public let alignment: Int
    /// Absolute file offset of the data section.
    public let dataOffset: Int

    private let file: MappedFile
    private let keyIndex: [String: Int]
    private let tensorIndex: [String: Int]

    public convenience init(path: String) throws(GGUFError) {
        let file: MappedFile
        do {
            file = try MappedFile(path: path)
        } catch {
            throw GGUFError(path, .unreadable(error.message))
        }
        try self.init(file: file)
    }

    /// Parses and validates the bytes of `file` (named by `file.path` in errors): the one
    /// parsing path, for files on disk and for in-memory images (fuzzing, tests).
    public init(file: MappedFile) throws(GGUFError) {
        let path = file.path
        self.path = path
        self.file = file
        var r = Cursor(bytes: file.bytes, path: path)

        // MARK: Header
        guard file.count >= 4, r.bytes.loadUnaligned(as: UInt32.self) == UInt32(littleEndian: 0x4655_4747) else {
            throw GGUFError(path, .badMagic)
        }
        r.pos = 4
        let rawVersion = try r.u32("version")
        guard rawVersion == 2 || rawVersion == 3 else { throw GGUFError(path, .unsupportedVersion(rawVersion)) }
        version = Int(rawVersion)
        let tensorCount = try r.u64("tensor count")
        let kvCount = try r.u64("metadata count")
        // Smallest encodings: a metadata pair is a key length (8), a type (4) and a 1-byte
        // value; a tensor info is a name length (8), n_dims (4), a type (4) and an offset (8).
        try r.requireCount(kvCount, minimumEach: 13, what: "metadata")
        try r.requireCount(tensorCount, minimumEach: 24, what: "tensor")
        if kvCount * 13 + tensorCount * 24 > UInt64(r.remaining) {
            throw GGUFError(path, .countTooLarge(what: "tensor", count: tensorCount))
        }

        // MARK: Metadata
        var pairs: [(key: String, value: GGUFValue)] = []
        pairs.reserveCapacity(Int(kvCount))
        var keys: [String: Int] = [:]
        for _ in 0..<Int(kvCount) {
            let key = try r.string("metadata key")
            let rawType = try r.u32("value type of \"\(key)\"")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError(path, .unknownValueType(key: key, typeID: rawType))
            }
            let value = try r.value(type, key: key, depth: 0)
            guard keys[key] == nil else { throw GGUFError(path, .duplicateKey(key)) }
            keys[key] = pairs.count
            pairs.append((key, value))
        }
        metadata = pairs
        keyIndex = keys

        // MARK: Alignment
        var align = GGUFFile.defaultAlignment
        if let i = keys["general.alignment"] {
            let v = pairs[i].value
            guard let a = v.int else {
                throw GGUFError(path, .badAlignment("expected an integer, found \(v.typeName)"))
            }
            guard a > 0, a & (a - 1) == 0 else { throw GGUFError(path, .badAlignment("\(a) is not a positive power of two")) }
            align = a
        }
        alignment = align

        // MARK: Tensor infos
        var infos: [GGUFTensorInfo] = []
        infos.reserveCapacity(Int(tensorCount))
        var names: [String: Int] = [:]
        var rawOffsets: [UInt64] = []
        rawOffsets.reserveCapacity(Int(tensorCount))
        for _ in 0..<Int(tensorCount) {
            let name = try r.string("tensor name")
            let nDims = try r.u32("dimension count of tensor \"\(name)\"")
            guard nDims <= 4 else { throw GGUFError(path, .tooManyDimensions(tensor: name, count: nDims)) }
            var rawDims: [UInt64] = []
            for _ in 0..<nDims { rawDims.append(try r.u64("dimensions of tensor \"\(name)\"")) }
            let type = GGMLType(id: try r.u32("type of tensor \"\(name)\""))
            let offset = try r.u64("data offset of tensor \"\(name)\"")
            guard names[name] == nil else { throw GGUFError(path, .duplicateTensor(name)) }
            names[name] = infos.count

            // Dimensions are int64 in ggml; a product that overflows is as corrupt as a negative.
            var dims: [Int] = []
            var elements = 1
            for d in rawDims {
                guard d <= UInt64(Int64.max) else { throw GGUFError(path, .badDimensions(tensor: name, dims: rawDims)) }
                let (p, o) = elements.multipliedReportingOverflow(by: Int(d))
                guard !o else { throw GGUFError(path, .badDimensions(tensor: name, dims: rawDims)) }
                elements = p
                dims.append(Int(d))
            }
            var byteCount: Int? = nil
            if let layout = type.blockLayout {
                let ne0 = dims.first ?? 1
                guard ne0 % layout.elements == 0 else { throw GGUFError(path, .partialBlock(tensor: name, type: type, ne0: ne0)) }
                let (bytes, o) = (elements / layout.elements).multipliedReportingOverflow(by: layout.bytes)
                guard !o else { throw GGUFError(path, .badDimensions(tensor: name, dims: rawDims)) }
                byteCount = bytes
            }
            guard offset % UInt64(align) == 0 else {
                throw GGUFError(path, .misalignedTensor(tensor: name, offset: offset, alignment: align))
            }
            rawOffsets.append(offset)
            // The offset is range-checked below, once the data section is known; until then it
            // is stored clamped so the Int conversion cannot trap.
            infos.append(GGUFTensorInfo(name: name, dims: dims, type: type,
                                        offset: Int(clamping: offset), byteCount: byteCount))
        }

        // MARK: Data section
        // The data starts at the first multiple of `align` after the tensor table.
        let (padded, o) = r.pos.addingReportingOverflow(align - 1)
        let start = o ? Int.max : padded / align * align
        let dataSize = start <= file.count ? file.count - start : 0
        dataOffset = min(start, file.count)
        for (i, info) in infos.enumerated() {
            let off = rawOffsets[i]
            let n = info.byteCount ?? 0
            guard off <= UInt64(dataSize), UInt64(n) <= UInt64(dataSize) - off else {
                throw GGUFError(path, .tensorOutOfBounds(tensor: info.name, offset: off, byteCount: n, dataSize: dataSize))
            }
        }
        // Bounds hold, so offset + size cannot overflow below.
        let extents = infos.compactMap { info -> (name: String, start: Int, end: Int)? in
            guard let n = info.byteCount, n > 0 else { return nil }
            return (info.name, info.offset, info.offset + n)
        }.sorted { $0.start < $1.start }
        for (a, b) in zip(extents, extents.dropFirst()) where a.end > b.start {
            throw GGUFError(path, .overlappingTensors(a.name, b.name))
        }
        tensorInfos = infos
        tensorIndex = names
    }

    // MARK: - Metadata access

    /// The value of metadata `key`, or nil.
    public func value(_ key: String) -> GGUFValue? {
        keyIndex[key].map { metadata[$0].value }
    }

    // MARK: - Tensor access

    public var tensorNames: [String] { tensorInfos.map(\.name) }

    /// The info of tensor `name`, or nil.
    public func info(_ name: String) -> GGUFTensorInfo? {
        tensorIndex[name].map { tensorInfos[$0] }
    }

    /// A zero-copy view of an F32, F16 or BF16 tensor (row-major shape, outermost first); nil
    /// for other types and unknown names. The bytes live in the memory map (the view retains
    /// this file): they are aligned to the file's `alignment`, which may be less than the
    /// element size in odd files.
    public func tensor(_ name: String) -> TensorView? {
        guard let info = info(name), let dtype = info.type.plainDType, let n = info.byteCount else { return nil }
        return TensorView(name: name, dtype: dtype, shape: info.shape, bytes: slice(info.offset, n), owner: self)
    }

    /// Element type and shape of an F32, F16 or BF16 tensor (as `tensor(_:)` serves it); nil
    /// for other types and unknown names. Use `info(_:)` for the stored ggml type of any tensor.
    public func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])? {
        guard let info = info(name), let dtype = info.type.plainDType, info.byteCount != nil else { return nil }
        return (dtype, info.shape)
    }

    /// The raw encoded bytes of any tensor whose type layout is known. They point into the
    /// memory map: valid while this file is alive (keep it in use while reading them).
    public func rawData(_ name: String) throws(GGUFError) -> UnsafeRawBufferPointer {
        guard let info = info(name) else { throw GGUFError(path, .noSuchTensor(name)) }
        guard let n = info.byteCount else { throw GGUFError(path, .unknownTensorType(tensor: name, typeID: info.type.id)) }
        return slice(info.offset, n)
    }

    /// Decodes tensor `name` to F32 values in storage order (ne[0] fastest, i.e. row-major
    /// for `info.shape`). Bit-exact with ggml's `dequantize_row_*` for Q8_0/Q4_0/Q4_1 and
    /// exact conversions for F16 (subnormals, infinities, NaN payloads kept) and BF16.
    public func dequantize(_ name: String) throws(GGUFError) -> [Float] {
        guard let info = info(name) else { throw GGUFError(path, .noSuchTensor(name)) }
        var failure: GGUFError?
        let out = [Float](unsafeUninitializedCapacity: info.elementCount) { buf, count in
            do throws(GGUFError) {
                try dequantize(name, into: buf)
                count = buf.count
            } catch {
                failure = error
                count = 0
            }
        }
        if let failure { throw failure }
        return out
    }

    /// Decodes tensor `name` into `out`, which must hold exactly `info(name).elementCount`
    /// values (a mismatch is a programming error and traps).
    public func dequantize(_ name: String, into out: UnsafeMutableBufferPointer<Float>) throws(GGUFError) {
        guard let info = info(name) else { throw GGUFError(path, .noSuchTensor(name)) }
        guard let n = info.byteCount else { throw GGUFError(path, .unknownTensorType(tensor: name, typeID: info.type.id)) }
        guard info.type.isDequantizable else { throw GGUFError(path, .unsupportedTensorType(tensor: name, type: info.type)) }
        precondition(out.count == info.elementCount, "dequantize: output holds \(out.count) values, tensor has \(info.elementCount)")
        GGMLDequantize.decode(info.type, from: slice(info.offset, n), into: out)
    }

    private func slice(_ offset: Int, _ count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: file.bytes[(dataOffset + offset)..<(dataOffset + offset + count)])
    }
}

// MARK: - Bounded little-endian cursor

/// Reads GGUF fields; every read checks the remaining length first.
private struct Cursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var pos = 0

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - pos }

    private mutating func need(_ n: Int, _ what: @autoclosure () -> String) throws(GGUFError) {
        guard n <= remaining else { throw GGUFError(path, .truncated(what: what(), offset: pos)) }
    }

    private mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws(GGUFError) -> T {
        try need(MemoryLayout<T>.size, what())
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: pos, as: T.self))
        pos += MemoryLayout<T>.size
        return v
    }

    mutating func u32(_ what: @autoclosure () -> String) throws(GGUFError) -> UInt32 { try load(UInt32.self, what()) }
    mutating func u64(_ what: @autoclosure () -> String) throws(GGUFError) -> UInt64 { try load(UInt64.self, what()) }

    /// Fails unless `count` values of at least `minimumEach` bytes could fit in what remains.
    func requireCount(_ count: UInt64, minimumEach: Int, what: String) throws(GGUFError) {
        guard count <= UInt64(remaining / minimumEach) else {
            throw GGUFError(path, .countTooLarge(what: what, count: count))
        }
    }

    mutating func string(_ what: @autoclosure () -> String) throws(GGUFError) -> String {
        let start = pos
        let n = try u64(what())
        guard n <= UInt64(remaining) else { throw GGUFError(path, .truncated(what: what(), offset: start)) }
        let raw = UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + Int(n))])
        guard let s = String(validating: raw.assumingMemoryBound(to: UInt8.self), as: UTF8.self) else {
            throw GGUFError(path, .invalidUTF8(what: what(), offset: start))
        }
        pos += Int(n)
        return s
    }

    mutating func value(_ type: GGUFValueType, key: String, depth: Int) throws(GGUFError) -> GGUFValue {
        let what = "value of \"\(key)\""
        switch type {
        case .uint8: return .uint8(try load(UInt8.self, what))
        case .int8: return .int8(try load(Int8.self, what))
        case .uint16: return .uint16(try load(UInt16.self, what))
        case .int16: return .int16(try load(Int16.self, what))
        case .uint32: return .uint32(try load(UInt32.self, what))
        case .int32: return .int32(try load(Int32.self, what))
        case .uint64: return .uint64(try load(UInt64.self, what))
        case .int64: return .int64(try load(Int64.self, what))
        case .float32: return .float32(Float(bitPattern: try load(UInt32.self, what)))
        case .float64: return .float64(Double(bitPattern: try load(UInt64.self, what)))
        case .bool:
            let b = try load(UInt8.self, what)
            guard b <= 1 else { throw GGUFError(path, .invalidBool(key: key)) }
            return .bool(b == 1)
        case .string: return .string(try string(what))
        case .array:
            guard depth < GGUFFile.maxArrayDepth else { throw GGUFError(path, .nestingTooDeep(key: key)) }
            let rawType = try u32("array element type of \"\(key)\"")
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw GGUFError(path, .unknownValueType(key: key, typeID: rawType))
            }
            let count = try u64("array length of \"\(key)\"")
            try requireCount(count, minimumEach: elementType.minimumEncodedSize, what: "array \"\(key)\" element")
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { items.append(try value(elementType, key: key, depth: depth + 1)) }
            return .array(items)
        }
    }
}
