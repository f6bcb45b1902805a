import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Collects tensors and writes them as a safetensors file, or as a Hugging Face checkpoint
/// directory (one file, or shards plus `model.safetensors.index.json`).
///
/// A thin layer over `SafetensorsStream`, which owns the file layout (byte-identical to the
/// Python `safetensors` package, see there): each added tensor's bytes are kept in memory and
/// become the producer of a `StreamedTensor`. Use `SafetensorsStream` directly when the bytes
/// already live elsewhere (a memory map) or are computed tensor by tensor; use this type for
/// small files and for sharded checkpoints.
///
/// Files are written atomically (`AtomicFile`); the index of a sharded checkpoint is written
/// after its shards.
public struct SafetensorsWriter {
    /// A tensor added so far, with its data byte count (needed to plan shards).
    struct Pending {
        let tensor: StreamedTensor
        let byteCount: Int
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
    public var dataByteCount: Int { pending.reduce(0) { $0 + $1.byteCount } }

    // MARK: Adding tensors

    /// Adds a tensor, copying `bytes` (little-endian elements, row-major).
    /// - Throws: `SafetensorsWriterError` for a reserved or duplicate name, a negative dimension,
    ///   an overflowing size, or a byte count that does not match dtype × shape.
    public mutating func add(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) throws {
        let expected = try checkNew(name: name, dtype: dtype, shape: shape)
        guard bytes.count == expected else {
            throw SafetensorsWriterError.sizeMismatch(name: name, expected: expected, actual: bytes.count)
        }
        append(name: name, dtype: dtype, shape: shape, bytes: [UInt8](bytes))
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
        append(name: name, dtype: dtype, shape: shape, bytes: bytes)
    }

    /// Stores `bytes` (already validated against dtype × shape) as the tensor's producer.
    private mutating func append(name: String, dtype: DType, shape: [Int], bytes: [UInt8]) {
        let tensor = StreamedTensor(name: name, dtype: dtype, shape: shape) { emit in
            try bytes.withUnsafeBytes { try emit($0) }
        }
        pending.append(Pending(tensor: tensor, byteCount: bytes.count))
        names.insert(name)
    }

    /// Validates a new entry and returns its byte size.
    private func checkNew(name: String, dtype: DType, shape: [Int]) throws -> Int {
        guard name != "__metadata__" else { throw SafetensorsWriterError.reservedName(name) }
        guard !names.contains(name) else { throw SafetensorsWriterError.duplicateName(name) }
        return try SafetensorsStream.byteCount(name: name, dtype: dtype, shape: shape)
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
            let size = t.byteCount
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
                for t in tensors { weightMap.append((t.tensor.name, name)) }
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

    static func writeFile(_ tensors: [Pending], metadata: [(key: String, value: String)]?, to path: String) throws {
        try SafetensorsStream.write(to: path, tensors: tensors.map(\.tensor), metadata: metadata)
    }

    // MARK: - Index output

    private static func hexDigit(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }

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
