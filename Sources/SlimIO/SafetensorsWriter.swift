import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Collects tensors and writes them as a safetensors file, or as a Hugging Face checkpoint
/// directory (one file, or shards plus `model.safetensors.index.json`).
///
/// Output is byte-identical to the Python `safetensors` package (Rust `serialize_to_file`) for
/// the same tensors and metadata:
///  - tensors are stored by descending dtype rank of the reference's `Dtype` enum (U64, I64,
///    F64, F32, U32, I32, BF16, F16, U16, I16, I8, U8, BOOL), then by name (byte order);
///  - the header is compact JSON in that order, `__metadata__` first, each entry as
///    `{"dtype":…,"shape":[…],"data_offsets":[b,e]}`, strings escaped as serde_json does;
///  - the header is padded with spaces to a multiple of 8 bytes, so data starts aligned.
/// One caveat: the reference keeps metadata in a hash map, so with two or more metadata keys
/// its key order varies from run to run; this writer keeps the given order.
///
/// Files are written atomically (`AtomicFile`), tensor bytes are streamed to the file in
/// order, never assembled into one buffer.
public struct SafetensorsWriter {
    struct Pending {
        let name: String
        let dtype: DType
        let shape: [Int]
        let bytes: [UInt8]
    }

    private var pending: [Pending] = []
    private var names: Set<String> = []

    /// `__metadata__` pairs to store, in order; nil writes no `__metadata__` key, an empty
    /// array writes `{}`. Keys must be unique.
    public var metadata: [(key: String, value: String)]?

    public init() {}

    /// Number of tensors added.
    public var tensorCount: Int { pending.count }
    /// Sum of all tensors' data bytes.
    public var dataByteCount: Int { pending.reduce(0) { $0 + $1.bytes.count } }

    // MARK: Adding tensors

    /// Adds a tensor, copying `bytes` (little-endian elements, row-major).
    /// - Throws: `SafetensorsWriterError` for a reserved or duplicate name, a negative dimension,
    ///   an overflowing size, or a byte count that does not match dtype × shape.
    public mutating func add(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws {
        let expected = try checkNew(name: name, dtype: dtype, shape: shape)
        guard bytes.count == expected else {
            throw SafetensorsWriterError.sizeMismatch(name: name, expected: expected, actual: bytes.count)
        }
        pending.append(Pending(name: name, dtype: dtype, shape: shape, bytes: [UInt8](bytes)))
        names.insert(name)
    }

    /// Adds a float tensor converted to `dtype` (F32, F16, BF16 or F64; see `F16`/`BF16` for
    /// rounding). `floats.count` must equal the shape's element count.
    public mutating func add(name: String, floats: [Float], shape: [Int], as dtype: DType) throws {
        guard dtype.isFloatingPoint else { throw SafetensorsWriterError.unsupportedConversion(name: name, dtype: dtype) }
        let byteCount = try checkNew(name: name, dtype: dtype, shape: shape)
        let elements = byteCount / dtype.byteSize
        guard floats.count == elements else {
            throw SafetensorsWriterError.sizeMismatch(name: name, expected: elements, actual: floats.count)
        }
        let bytes = [UInt8](unsafeUninitializedCapacity: byteCount) { buffer, initialized in
            floats.withUnsafeBufferPointer { encodeFloats($0, as: dtype, into: UnsafeMutableRawBufferPointer(buffer)) }
            initialized = byteCount
        }
        pending.append(Pending(name: name, dtype: dtype, shape: shape, bytes: bytes))
        names.insert(name)
    }

    /// Validates a new entry and returns its byte size.
    private func checkNew(name: String, dtype: DType, shape: [Int]) throws -> Int {
        guard name != "__metadata__" else { throw SafetensorsWriterError.reservedName(name) }
        guard !names.contains(name) else { throw SafetensorsWriterError.duplicateName(name) }
        var size = dtype.byteSize
        for d in shape {
            let (p, overflow) = size.multipliedReportingOverflow(by: d)
            guard d >= 0, !overflow else { throw SafetensorsWriterError.invalidShape(name: name, shape: shape) }
            size = p
        }
        return size
    }

    // MARK: Writing

    /// Atomically writes all tensors as one safetensors file at `path`.
    public func write(to path: String) throws {
        try Self.writeFile(pending, metadata: metadata, to: path)
    }

    /// Writes a checkpoint directory the way `huggingface_hub.save_torch_state_dict` does
    /// (created if missing):
    ///  - tensors are split in the order they were added: a new shard starts when the next
    ///    tensor would push the current one past `maxShardBytes` of tensor data, and a tensor
    ///    larger than `maxShardBytes` gets a shard of its own;
    ///  - one shard is written as `model.safetensors`; several as
    ///    `model-00001-of-0000N.safetensors` plus `model.safetensors.index.json`
    ///    (`{"metadata": {"total_size": data bytes}, "weight_map": {...}}`, indented by 2 like
    ///    Python's `json.dump(index, f, indent=2)`, ASCII-escaped, no final newline);
    ///  - `metadata` goes into every file (pass `[("format", "pt")]` to match the Hugging Face
    ///    writer, which loaders such as transformers check).
    /// Each file is replaced atomically and the index is written after its shards; then stale
    /// files of an earlier checkpoint (`model.safetensors`, `model-NNNNN-of-NNNNN.safetensors`,
    /// their `.index.json`) that were not just written are removed, so the directory is never
    /// left with both a single file and an index after success. No tensors: an empty
    /// `model.safetensors`.
    /// - Returns: the paths written, shards first, index last.
    @discardableResult
    public func writeCheckpoint(directory: String, maxShardBytes: Int) throws -> [String] {
        guard maxShardBytes > 0 else { throw SafetensorsWriterError.invalidShardSize(maxShardBytes) }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw FileError(directory, "cannot create directory: \(error.localizedDescription)")
        }

        // Same algorithm as huggingface_hub `split_state_dict_into_shards_factory`.
        var plan: [[Int]] = []
        var current: [Int] = []
        var currentSize = 0
        var totalSize = 0
        for (i, t) in pending.enumerated() {
            let size = t.bytes.count
            totalSize += size
            if size > maxShardBytes {
                plan.append([i])
                continue
            }
            if currentSize + size > maxShardBytes {
                plan.append(current)
                current = []
                currentSize = 0
            }
            current.append(i)
            currentSize += size
        }
        if !current.isEmpty { plan.append(current) }

        func path(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        var written: [String] = []
        if plan.count <= 1 {
            let file = path(SafetensorsCheckpoint.singleFileName)
            try Self.writeFile(pending, metadata: metadata, to: file)
            written.append(file)
        } else {
            var weightMap: [(String, String)] = []
            for (s, members) in plan.enumerated() {
                let name = Self.shardFileName(index: s + 1, of: plan.count)
                let tensors = members.map { pending[$0] }
                try Self.writeFile(tensors, metadata: metadata, to: path(name))
                written.append(path(name))
                for t in tensors { weightMap.append((t.name, name)) }
            }
            let index = path(SafetensorsCheckpoint.indexFileName)
            try AtomicFile.write(Data(Self.indexJSON(totalSize: totalSize, weightMap: weightMap)), to: index)
            written.append(index)
        }
        try Self.removeStaleCheckpointFiles(in: directory, keeping: Set(written.map { ($0 as NSString).lastPathComponent }))
        return written
    }

    /// `model-00001-of-00003.safetensors` (1-based `index`).
    public static func shardFileName(index: Int, of count: Int) -> String {
        "model-\(zeroPadded(index))-of-\(zeroPadded(count)).safetensors"
    }

    private static func zeroPadded(_ n: Int) -> String {
        let s = String(n)
        return s.count >= 5 ? s : String(repeating: "0", count: 5 - s.count) + s
    }

    // MARK: - File output

    static func writeFile(_ tensors: [Pending], metadata: [(key: String, value: String)]?, to path: String) throws {
        let ordered = storageOrder(tensors)
        let header = try headerBytes(ordered, metadata: metadata)
        try AtomicFile.write(to: path) { handle in
            var out = FDWriter(fd: handle.fileDescriptor, path: path)
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try out.append($0) }
            try header.withUnsafeBytes { try out.append($0) }
            for t in ordered { try t.bytes.withUnsafeBytes { try out.append($0) } }
            try out.flush()
        }
    }

    /// Position of each dtype in the reference's `Dtype` enum, which orders the file.
    static func rank(_ d: DType) -> Int {
        switch d {
        case .bool: return 0
        case .u8: return 1
        case .i8: return 2
        case .i16: return 3
        case .u16: return 4
        case .f16: return 5
        case .bf16: return 6
        case .i32: return 7
        case .u32: return 8
        case .f32: return 9
        case .f64: return 10
        case .i64: return 11
        case .u64: return 12
        }
    }

    static func storageOrder(_ tensors: [Pending]) -> [Pending] {
        tensors.sorted { a, b in
            let ra = rank(a.dtype), rb = rank(b.dtype)
            if ra != rb { return ra > rb }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    /// The header JSON for tensors already in storage order, space-padded to a multiple of 8.
    static func headerBytes(_ ordered: [Pending], metadata: [(key: String, value: String)]?) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + ordered.count * 96)
        out.append(UInt8(ascii: "{"))
        var first = true
        if let metadata {
            var keys = Set<String>()
            out.append(contentsOf: Array("\"__metadata__\":{".utf8))
            for (i, (k, v)) in metadata.enumerated() {
                guard keys.insert(k).inserted else { throw SafetensorsWriterError.duplicateMetadataKey(k) }
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendSerdeString(k, to: &out)
                out.append(UInt8(ascii: ":"))
                appendSerdeString(v, to: &out)
            }
            out.append(UInt8(ascii: "}"))
            first = false
        }
        var offset = 0
        for t in ordered {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendSerdeString(t.name, to: &out)
            out.append(contentsOf: Array(":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[".utf8))
            out.append(contentsOf: Array(t.shape.map(String.init).joined(separator: ",").utf8))
            out.append(contentsOf: Array("],\"data_offsets\":[\(offset),\(offset + t.bytes.count)]}".utf8))
            offset += t.bytes.count
        }
        out.append(UInt8(ascii: "}"))
        while out.count % 8 != 0 { out.append(0x20) }
        guard out.count <= SafetensorsLimits.maxHeaderBytes else { throw SafetensorsWriterError.headerTooLarge(out.count) }
        return out
    }

    /// A JSON string as serde_json writes it: `"` `\` and control characters escaped (short
    /// forms for \b \t \n \f \r, `\u00xx` with lowercase hex otherwise), everything else raw UTF-8.
    static func appendSerdeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [0x5C, 0x22])
            case UInt8(ascii: "\\"): out.append(contentsOf: [0x5C, 0x5C])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x00..<0x20: out.append(contentsOf: Array("\\u00".utf8) + [hexDigit(b >> 4), hexDigit(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }

    // MARK: - Index output

    /// The index exactly as Python's `json.dump(index, f, indent=2)` writes it.
    static func indexJSON(totalSize: Int, weightMap: [(String, String)]) -> [UInt8] {
        var out = Array("{\n  \"metadata\": {\n    \"total_size\": \(totalSize)\n  },\n  \"weight_map\": {".utf8)
        if weightMap.isEmpty {
            out.append(contentsOf: Array("}\n}".utf8))
            return out
        }
        for (i, (tensor, file)) in weightMap.enumerated() {
            out.append(contentsOf: Array((i == 0 ? "\n    " : ",\n    ").utf8))
            appendPythonASCIIString(tensor, to: &out)
            out.append(contentsOf: Array(": ".utf8))
            appendPythonASCIIString(file, to: &out)
        }
        out.append(contentsOf: Array("\n  }\n}".utf8))
        return out
    }

    /// A JSON string as Python's `json` writes it with `ensure_ascii=True`: printable ASCII
    /// raw, short escapes for `"` `\` \n \r \t \b \f, `\uxxxx` (lowercase, UTF-16 surrogate
    /// pairs above U+FFFF) for everything else, DEL included.
    static func appendPythonASCIIString(_ s: String, to out: inout [UInt8]) {
        func unicodeEscape(_ unit: UInt16) {
            out.append(contentsOf: [0x5C, UInt8(ascii: "u")])
            for shift in stride(from: 12, through: 0, by: -4) { out.append(hexDigit(UInt8((unit >> UInt16(shift)) & 0xF))) }
        }
        out.append(UInt8(ascii: "\""))
        for unit in s.utf16 {
            switch unit {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x20...0x7E: out.append(UInt8(unit))
            default: unicodeEscape(unit)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    // MARK: - Stale files

    /// Removes `model.safetensors`, `model-NNNNN-of-NNNNN.safetensors` and their `.index.json`
    /// in `directory` that are not in `keeping` (the pattern huggingface_hub cleans up).
    static func removeStaleCheckpointFiles(in directory: String, keeping: Set<String>) throws {
        let entries: [String]
        do {
            entries = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw FileError(directory, "cannot list directory: \(error.localizedDescription)")
        }
        for name in entries where isCheckpointFileName(name) && !keeping.contains(name) {
            let p = (directory as NSString).appendingPathComponent(name)
            guard unlink(p) == 0 || errno == ENOENT else {
                throw FileError(p, "cannot remove stale checkpoint file: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Matches `model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?` exactly.
    static func isCheckpointFileName(_ name: String) -> Bool {
        var rest = Substring(name)
        if rest.hasSuffix(".index.json") { rest = rest.dropLast(".index.json".count) }
        guard rest.hasPrefix("model"), rest.hasSuffix(".safetensors") else { return false }
        let middle = Array(rest.dropFirst("model".count).dropLast(".safetensors".count).utf8)
        if middle.isEmpty { return true }
        // "-00001-of-00003"
        guard middle.count == 15, middle[0] == UInt8(ascii: "-"), Array(middle[6..<10]) == Array("-of-".utf8) else {
            return false
        }
        let digits = middle[1..<6] + middle[10..<15]
        return digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }
}

// MARK: - Buffered descriptor output

/// Buffers small writes (headers, small tensors) and passes large tensors straight to
/// `write(2)`, retrying partial writes and EINTR.
private struct FDWriter {
    let fd: Int32
    let path: String
    private var buffer: [UInt8] = []
    private let capacity = 1 << 20

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(capacity)
    }

    mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count <= capacity {
            buffer.append(contentsOf: bytes)
            return
        }
        try flush()
        if bytes.count < capacity {
            buffer.append(contentsOf: bytes)
        } else {
            try writeAll(bytes)
        }
    }

    mutating func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let n = write(fd, p, min(remaining, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path, "write failed: \(String(cString: strerror(errno)))")
            }
            p += n
            remaining -= n
        }
    }
}
