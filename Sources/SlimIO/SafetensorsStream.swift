import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The one place that lays out and writes a safetensors file.
//
// The header is computed from names, dtypes and shapes alone; each tensor's bytes are then
// produced on demand (from a memory map, a conversion buffer, an in-memory array, ...) and
// written straight to the file, so a multi-GB checkpoint is never assembled in memory.
// `SafetensorsWriter` (collect-then-write, sharded checkpoints), the quantization pipeline and
// the GGUF import all write through `SafetensorsStream.write`, so the layout rules below exist
// once.
//
// Output is byte-identical to the Python `safetensors` package (Rust `serialize_to_file`):
//  - tensors are stored by descending dtype rank of the reference's `Dtype` enum (U64, I64,
//    F64, F32, U32, I32, BF16, F16, U16, I16, I8, U8, BOOL), then by name (byte order);
//  - the header is compact JSON in that order, `__metadata__` first, each entry as
//    `{"dtype":…,"shape":[…],"data_offsets":[b,e]}`, strings escaped as serde_json does;
//  - the header is padded with spaces to a multiple of 8 bytes, so data starts aligned.
// One caveat: the reference keeps metadata in a hash map, so with two or more metadata keys its
// key order varies from run to run; this writer keeps the given order.

// MARK: - Streamed tensors

/// One tensor to write: what the header needs, plus a producer of its bytes.
public struct StreamedTensor {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    /// Called once, while the file is written, in storage order; it hands `emit` the tensor's
    /// little-endian, row-major bytes in any number of pieces, which must add up to exactly
    /// dtype × shape bytes. Errors it throws abort the write (the destination stays untouched).
    public let produce: (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void

    public init(name: String, dtype: DType, shape: [Int],
                produce: @escaping (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.produce = produce
    }
}

public enum SafetensorsStream {
    // MARK: Writing

    /// Atomically writes `tensors` as one safetensors file at `path` (temporary file, fsync,
    /// rename: see `AtomicFile`). `metadata` nil writes no `__metadata__` key; an empty array
    /// writes `{}`.
    /// - Throws: `SafetensorsWriterError` for a reserved or duplicate name, an invalid or
    ///   overflowing shape, a duplicate metadata key or an oversized header (before anything is
    ///   written); `FileError` naming `path` for a producer that emits the wrong number of bytes
    ///   or an I/O failure. The destination is untouched on any error.
    public static func write(to path: String, tensors: [StreamedTensor],
                             metadata: [(key: String, value: String)]?) throws {
        var names = Set<String>()
        var sized: [(tensor: StreamedTensor, size: Int)] = []
        sized.reserveCapacity(tensors.count)
        for t in tensors {
            guard t.name != "__metadata__" else { throw SafetensorsWriterError.reservedName(t.name) }
            guard names.insert(t.name).inserted else { throw SafetensorsWriterError.duplicateName(t.name) }
            sized.append((t, try byteCount(name: t.name, dtype: t.dtype, shape: t.shape)))
        }
        let ordered = storageOrder(sized)
        let header = try headerBytes(ordered, metadata: metadata)
        try AtomicFile.write(to: path) { handle in
            var out = DescriptorWriter(fd: handle.fileDescriptor, path: path)
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try out.append($0) }
            try header.withUnsafeBytes { try out.append($0) }
            for (t, expected) in ordered {
                var written = 0
                try t.produce { bytes in
                    written += bytes.count
                    guard written <= expected else {
                        throw FileError(path, "tensor \(t.name): producer wrote more than its \(expected) bytes")
                    }
                    try out.append(bytes)
                }
                guard written == expected else {
                    throw FileError(path, "tensor \(t.name): producer wrote \(written) of \(expected) bytes")
                }
            }
            try out.flush()
        }
    }

    /// A tensor whose bytes are already in memory (e.g. a view of a memory map). The buffer
    /// must stay valid until `write` returns.
    public static func tensor(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) -> StreamedTensor {
        StreamedTensor(name: name, dtype: dtype, shape: shape) { emit in try emit(bytes) }
    }

    /// dtype size × the product of `shape` (1 for a scalar `[]`, 0 if any dimension is 0).
    /// - Throws: `SafetensorsWriterError.invalidShape` for a negative dimension or an overflow.
    public static func byteCount(name: String, dtype: DType, shape: [Int]) throws -> Int {
        var size = dtype.byteSize
        for d in shape {
            let (p, overflow) = size.multipliedReportingOverflow(by: d)
            guard d >= 0, !overflow else { throw SafetensorsWriterError.invalidShape(name: name, shape: shape) }
            size = p
        }
        return size
    }

    // MARK: - Layout

    /// Position of each dtype in the reference's `Dtype` enum (higher ranks are stored first).
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

    static func storageOrder(_ tensors: [(tensor: StreamedTensor, size: Int)]) -> [(tensor: StreamedTensor, size: Int)] {
        tensors.sorted { a, b in
            let ra = rank(a.tensor.dtype), rb = rank(b.tensor.dtype)
            if ra != rb { return ra > rb }
            return a.tensor.name.utf8.lexicographicallyPrecedes(b.tensor.name.utf8)
        }
    }

    /// The header JSON for tensors already in storage order, space-padded to a multiple of 8.
    static func headerBytes(_ ordered: [(tensor: StreamedTensor, size: Int)],
                            metadata: [(key: String, value: String)]?) throws -> [UInt8] {
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
        for (t, size) in ordered {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendSerdeString(t.name, to: &out)
            out.append(contentsOf: Array(":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[".utf8))
            out.append(contentsOf: Array(t.shape.map(String.init).joined(separator: ",").utf8))
            // Offsets cannot overflow: the file's total size must be addressable anyway, but a
            // hostile sum of huge shapes is still caught rather than trapping.
            let (end, overflow) = offset.addingReportingOverflow(size)
            guard !overflow else { throw SafetensorsWriterError.invalidShape(name: t.name, shape: t.shape) }
            out.append(contentsOf: Array("],\"data_offsets\":[\(offset),\(end)]}".utf8))
            offset = end
        }
        out.append(UInt8(ascii: "}"))
        while out.count % 8 != 0 { out.append(0x20) }
        guard out.count <= SafetensorsLimits.maxHeaderBytes else { throw SafetensorsWriterError.headerTooLarge(out.count) }
        return out
    }

    /// A JSON string as serde_json writes it: `"` `\` and control characters escaped (short
    /// forms for \b \t \n \f \r, `\u00xx` with lowercase hex otherwise), everything else raw UTF-8.
    static func appendSerdeString(_ s: String, to out: inout [UInt8]) {
        func hex(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }
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
            case 0x00..<0x20: out.append(contentsOf: Array("\\u00".utf8) + [hex(b >> 4), hex(b & 0xF)])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

// MARK: - Buffered descriptor output

/// Buffers small writes (headers, small tensors) in 1 MiB and passes large ones straight to
/// `write(2)`, retrying partial writes and EINTR. Call `flush()` before closing the descriptor;
/// bytes still buffered are otherwise lost.
public struct DescriptorWriter {
    public let fd: Int32
    /// Named in errors.
    public let path: String
    private var buffer: [UInt8] = []
    private let capacity = 1 << 20

    public init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
        buffer.reserveCapacity(capacity)
    }

    /// - Throws: `FileError` naming `path` when `write(2)` fails.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
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

    /// Writes out everything buffered.
    public mutating func flush() throws {
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
