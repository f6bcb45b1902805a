import SlimIO

// A minimal protocol-buffers wire-format reader: enough to walk SentencePiece's ModelProto.
// Every read is bounds-checked; malformed input throws instead of trapping.

struct ProtoReader {
    enum Value {
        case varint(UInt64)
        case fixed64(UInt64)
        case fixed32(UInt32)
        /// Byte range of a length-delimited field inside the reader's buffer.
        case bytes(Range<Int>)
    }

    let buffer: UnsafeRawBufferPointer
    private(set) var position: Int
    let end: Int
    let path: String

    init(_ buffer: UnsafeRawBufferPointer, range: Range<Int>? = nil, path: String) {
        self.buffer = buffer
        self.position = range?.lowerBound ?? 0
        self.end = range?.upperBound ?? buffer.count
        self.path = path
    }

    /// A reader over a nested message.
    func sub(_ range: Range<Int>) -> ProtoReader { ProtoReader(buffer, range: range, path: path) }

    private func error(_ message: String) -> FileError {
        FileError(path, "malformed protobuf at byte \(position): \(message)")
    }

    private mutating func readVarint() throws(FileError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw error("truncated varint") }
            let b = buffer[position]
            position += 1
            if shift == 63 && b > 1 { throw error("varint overflows 64 bits") }
            result |= UInt64(b & 0x7F) << shift
            if b < 0x80 { return result }
            shift += 7
            if shift > 63 { throw error("varint longer than 10 bytes") }
        }
    }

    /// The next field, or nil at the end of the message.
    mutating func next() throws(FileError) -> (field: Int, value: Value)? {
        guard position < end else { return nil }
        let key = try readVarint()
        let field = Int(truncatingIfNeeded: key >> 3)
        guard field > 0, field < (1 << 29) else { throw error("invalid field number \(key >> 3)") }
        switch key & 7 {
        case 0:
            return (field, .varint(try readVarint()))
        case 1:
            guard end - position >= 8 else { throw error("truncated 64-bit field") }
            let v = buffer.loadUnaligned(fromByteOffset: position, as: UInt64.self)
            position += 8
            return (field, .fixed64(UInt64(littleEndian: v)))
        case 2:
            let n = try readVarint()
            guard n <= UInt64(end - position) else { throw error("length-delimited field of \(n) bytes overruns the message") }
            let start = position
            position += Int(n)
            return (field, .bytes(start..<position))
        case 5:
            guard end - position >= 4 else { throw error("truncated 32-bit field") }
            let v = buffer.loadUnaligned(fromByteOffset: position, as: UInt32.self)
            position += 4
            return (field, .fixed32(UInt32(littleEndian: v)))
        default:
            throw error("unsupported wire type \(key & 7)")
        }
    }

    func bytes(_ r: Range<Int>) -> [UInt8] { Array(buffer[r]) }

    /// Strict UTF-8 string of a length-delimited field.
    func string(_ r: Range<Int>, what: String) throws(FileError) -> String {
        let b = bytes(r)
        guard isValidUTF8(b) else { throw FileError(path, "\(what) is not valid UTF-8") }
        return String(decoding: b, as: UTF8.self)
    }
}

extension ProtoReader.Value {
    var uint64: UInt64? { if case .varint(let v) = self { return v }; return nil }
    var bool: Bool? { uint64.map { $0 != 0 } }
    var float: Float? { if case .fixed32(let v) = self { return Float(bitPattern: v) }; return nil }
    var range: Range<Int>? { if case .bytes(let r) = self { return r }; return nil }
}
