import Foundation
import SlimIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A safetensors writer that streams tensor data instead of collecting it.
//
// Why not SlimIO's `SafetensorsWriter`: it copies every tensor into memory before writing, so a
// 7B checkpoint (13.5 GB of F16) or the calibration activations (GBs) would be held twice. Here
// the header is computed from names, dtypes and shapes alone and each tensor's bytes are
// produced on demand (from a memory map, a conversion buffer, ...) and written straight to the
// file. The layout is the same as `SafetensorsWriter`'s (and the Python package's): tensors by
// descending dtype rank of the reference's `Dtype` enum then by name, compact header JSON with
// `__metadata__` first, space-padded to a multiple of 8 bytes.

/// One tensor to stream: what the header needs, plus a producer of its bytes.
struct StreamedTensor {
    let name: String
    let dtype: DType
    let shape: [Int]
    /// Called once, in storage order, with a sink that accepts the tensor's little-endian bytes
    /// in any number of pieces. The pieces must add up to exactly dtype × shape bytes.
    let produce: (_ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
}

enum SafetensorsStream {
    /// Atomically writes `tensors` as one safetensors file at `path`.
    /// - Throws: `FileError` naming `path` for a duplicate or reserved name, an invalid or
    ///   overflowing shape, a producer that emits the wrong number of bytes, or an I/O failure;
    ///   the destination is then untouched.
    static func write(to path: String, tensors: [StreamedTensor], metadata: [(key: String, value: String)]?) throws {
        var names = Set<String>()
        var sizes: [String: Int] = [:]
        for t in tensors {
            guard t.name != "__metadata__" else { throw FileError(path, "tensor name \"__metadata__\" is reserved") }
            guard names.insert(t.name).inserted else { throw FileError(path, "duplicate tensor name \(t.name)") }
            var size = t.dtype.byteSize
            for d in t.shape {
                let (p, overflow) = size.multipliedReportingOverflow(by: d)
                guard d >= 0, !overflow else { throw FileError(path, "tensor \(t.name) has an invalid shape \(t.shape)") }
                size = p
            }
            sizes[t.name] = size
        }
        let ordered = storageOrder(tensors)
        let header = headerBytes(ordered.map { ($0.name, $0.dtype, $0.shape, sizes[$0.name]!) }, metadata: metadata)
        try AtomicFile.write(to: path) { handle in
            var out = DescriptorWriter(fd: handle.fileDescriptor, path: path)
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try out.append($0) }
            try header.withUnsafeBytes { try out.append($0) }
            for t in ordered {
                let expected = sizes[t.name]!
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

    /// A tensor whose bytes are already in memory (e.g. a view of a memory map). The buffer must
    /// stay valid until `write` returns.
    static func tensor(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) -> StreamedTensor {
        StreamedTensor(name: name, dtype: dtype, shape: shape) { emit in try emit(bytes) }
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

    static func storageOrder(_ tensors: [StreamedTensor]) -> [StreamedTensor] {
        tensors.sorted { a, b in
            let ra = rank(a.dtype), rb = rank(b.dtype)
            if ra != rb { return ra > rb }
            return a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }
    }

    /// Compact header JSON for tensors in storage order, padded with spaces to a multiple of 8.
    static func headerBytes(_ ordered: [(name: String, dtype: DType, shape: [Int], size: Int)],
                            metadata: [(key: String, value: String)]?) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        var first = true
        if let metadata {
            out += Array("\"__metadata__\":{".utf8)
            for (i, (k, v)) in metadata.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                appendString(k, to: &out)
                out.append(UInt8(ascii: ":"))
                appendString(v, to: &out)
            }
            out.append(UInt8(ascii: "}"))
            first = false
        }
        var offset = 0
        for t in ordered {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            appendString(t.name, to: &out)
            out += Array(":{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[".utf8)
            out += Array(t.shape.map(String.init).joined(separator: ",").utf8)
            out += Array("],\"data_offsets\":[\(offset),\(offset + t.size)]}".utf8)
            offset += t.size
        }
        out.append(UInt8(ascii: "}"))
        while out.count % 8 != 0 { out.append(0x20) }
        return out
    }

    /// A JSON string as serde_json writes it (what the safetensors package and SlimIO emit):
    /// `"` `\` and control characters escaped, everything else raw UTF-8.
    static func appendString(_ s: String, to out: inout [UInt8]) {
        func hex(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x61 + v - 10 }
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case 0x22: out += [0x5C, 0x22]
            case 0x5C: out += [0x5C, 0x5C]
            case 0x08: out += [0x5C, UInt8(ascii: "b")]
            case 0x09: out += [0x5C, UInt8(ascii: "t")]
            case 0x0A: out += [0x5C, UInt8(ascii: "n")]
            case 0x0C: out += [0x5C, UInt8(ascii: "f")]
            case 0x0D: out += [0x5C, UInt8(ascii: "r")]
            case 0x00..<0x20: out += Array("\\u00".utf8) + [hex(b >> 4), hex(b & 0xF)]
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

// MARK: - Buffered descriptor output

/// Buffers small writes and passes large ones straight to write(2), retrying partial writes
/// and EINTR.
struct DescriptorWriter {
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
