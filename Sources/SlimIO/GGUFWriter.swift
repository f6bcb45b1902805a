import Foundation

/// Builds a GGUF v3 (or v2) file from metadata and already-encoded tensor data. Small by
/// design: it exists so tests and tools can produce well-formed GGUF files (and then corrupt
/// them on purpose) without Python; it does not quantize.
///
/// Tensors are laid out in insertion order, each padded to the alignment, which is taken from
/// a `general.alignment` metadata value when one is set (default 32).
public struct GGUFWriter {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public let message: String
        public var description: String { "GGUF writer: \(message)" }
    }

    public var version: UInt32
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    public private(set) var tensors: [(name: String, dims: [Int], type: GGMLType, data: [UInt8])] = []

    public init(version: UInt32 = 3) {
        self.version = version
    }

    /// Sets `key` (replacing an earlier value in place, keeping its position).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if let i = metadata.firstIndex(where: { $0.key == key }) {
            metadata[i].value = value
        } else {
            metadata.append((key, value))
        }
    }

    /// Adds a tensor whose `data` is already encoded as `type` with GGUF-order `dims`
    /// (ne[0] fastest). Throws when the byte count does not match the dimensions.
    public mutating func addTensor(name: String, dims: [Int], type: GGMLType, data: [UInt8]) throws(Failure) {
        guard !tensors.contains(where: { $0.name == name }) else { throw Failure(message: "duplicate tensor \"\(name)\"") }
        var elements = 1
        for d in dims {
            let (p, o) = elements.multipliedReportingOverflow(by: d)
            guard d >= 0, !o else { throw Failure(message: "tensor \"\(name)\": bad dimensions \(dims)") }
            elements = p
        }
        guard dims.count <= 4 else { throw Failure(message: "tensor \"\(name)\": more than 4 dimensions") }
        guard let layout = type.blockLayout else { throw Failure(message: "tensor \"\(name)\": unknown type \(type)") }
        guard (dims.first ?? 1) % layout.elements == 0, elements / layout.elements * layout.bytes == data.count else {
            throw Failure(message: "tensor \"\(name)\": \(data.count) bytes do not match \(type) with dimensions \(dims)")
        }
        tensors.append((name, dims, type, data))
    }

    /// Adds an F32 tensor from values in storage order.
    public mutating func addTensor(name: String, dims: [Int], floats: [Float]) throws(Failure) {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(floats.count * 4)
        for f in floats { withUnsafeBytes(of: f.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
        try addTensor(name: name, dims: dims, type: .f32, data: bytes)
    }

    /// The file's bytes.
    public func serialized() throws(Failure) -> [UInt8] {
        var alignment = 32
        if let v = metadata.first(where: { $0.key == "general.alignment" })?.value {
            guard let a = v.int, a > 0, a & (a - 1) == 0 else { throw Failure(message: "general.alignment must be a power of two") }
            alignment = a
        }
        var out: [UInt8] = Array("GGUF".utf8)
        out.appendLE(version)
        out.appendLE(UInt64(tensors.count))
        out.appendLE(UInt64(metadata.count))
        for (key, value) in metadata {
            out.appendString(key)
            try out.appendValue(value, key: key, withType: true)
        }
        var offset = 0
        var offsets: [Int] = []
        for t in tensors {
            out.appendString(t.name)
            out.appendLE(UInt32(t.dims.count))
            for d in t.dims { out.appendLE(UInt64(d)) }
            out.appendLE(t.type.id)
            out.appendLE(UInt64(offset))
            offsets.append(offset)
            offset = (offset + t.data.count + alignment - 1) / alignment * alignment
        }
        let start = (out.count + alignment - 1) / alignment * alignment
        out.append(contentsOf: repeatElement(0, count: start - out.count))
        for (t, off) in zip(tensors, offsets) {
            out.append(contentsOf: repeatElement(0, count: start + off - out.count))
            out.append(contentsOf: t.data)
        }
        return out
    }

    /// Writes the file atomically.
    public func write(to path: String) throws {
        try AtomicFile.write(Data(try serialized()), to: path)
    }
}

// MARK: - Encoding

extension Array where Element == UInt8 {
    fileprivate mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }

    fileprivate mutating func appendString(_ s: String) {
        appendLE(UInt64(s.utf8.count))
        append(contentsOf: s.utf8)
    }

    fileprivate mutating func appendValue(_ value: GGUFValue, key: String, withType: Bool) throws(GGUFWriter.Failure) {
        if withType { appendLE(value.wireType.rawValue) }
        switch value {
        case .uint8(let v): appendLE(v)
        case .int8(let v): appendLE(v)
        case .uint16(let v): appendLE(v)
        case .int16(let v): appendLE(v)
        case .uint32(let v): appendLE(v)
        case .int32(let v): appendLE(v)
        case .uint64(let v): appendLE(v)
        case .int64(let v): appendLE(v)
        case .float32(let v): appendLE(v.bitPattern)
        case .float64(let v): appendLE(v.bitPattern)
        case .bool(let v): append(v ? 1 : 0)
        case .string(let s): appendString(s)
        case .array(let items):
            // An empty array carries no element type; uint8 is as good as any.
            let elementType = items.first?.wireType ?? .uint8
            guard items.allSatisfy({ $0.wireType == elementType }) else {
                throw GGUFWriter.Failure(message: "array \"\(key)\" mixes element types")
            }
            appendLE(elementType.rawValue)
            appendLE(UInt64(items.count))
            for item in items { try appendValue(item, key: key, withType: false) }
        }
    }
}

extension GGUFValue {
    /// The wire type id this value is encoded with.
    var wireType: GGUFValueType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32: return .uint32
        case .int32: return .int32
        case .uint64: return .uint64
        case .int64: return .int64
        case .float32: return .float32
        case .float64: return .float64
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }
}
