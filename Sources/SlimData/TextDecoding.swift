import SlimIO

// MARK: - Plain text files

/// The UTF-8 content of a text file, exactly as stored (no newline translation, a byte order
/// mark is kept as U+FEFF). An empty file gives "".
///
/// Throws a `FileError` naming the file when it cannot be read, and the byte offset and line of
/// the first invalid UTF-8 sequence when it is not UTF-8 (Python's strict decoder refuses the
/// same inputs: overlong forms, surrogates, code points above U+10FFFF, truncated sequences).
public func loadTextFile(path: String) throws(FileError) -> String {
    let file = try MappedFile(path: path)
    // The map must outlive every use of `file.bytes` (ARC may release `file` after its last use).
    defer { withExtendedLifetime(file) {} }
    try UTF8Check.validate(file.bytes, path: path)
    return String(decoding: file.bytes, as: UTF8.self)
}

/// UTF-8 validation that reports where the input goes wrong.
public enum UTF8Check {
    /// Offset of the first byte of the first invalid sequence, or nil when `bytes` is valid.
    public static func firstInvalidOffset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = bytes.count
        var i = 0
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 { i += 1; continue }
            // Valid ranges per the Unicode standard, Table 3-7.
            let length: Int
            var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
            switch b0 {
            case 0xC2...0xDF: length = 2
            case 0xE0: length = 3; lo = 0xA0
            case 0xE1...0xEC, 0xEE...0xEF: length = 3
            case 0xED: length = 3; hi = 0x9F
            case 0xF0: length = 4; lo = 0x90
            case 0xF1...0xF3: length = 4
            case 0xF4: length = 4; hi = 0x8F
            default: return i
            }
            guard i + length <= n else { return i }
            let b1 = bytes[i + 1]
            guard b1 >= lo && b1 <= hi else { return i }
            for k in 2..<max(2, length) where bytes[i + k] & 0xC0 != 0x80 { return i }
            i += length
        }
        return nil
    }

    /// Throws a `FileError` with the offset and 1-based line of the first invalid sequence.
    public static func validate(_ bytes: UnsafeRawBufferPointer, path: String) throws(FileError) {
        guard let offset = firstInvalidOffset(bytes) else { return }
        let line = 1 + bytes[0..<offset].reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) }
        throw FileError(path, "not valid UTF-8: invalid byte sequence at byte offset \(offset) (line \(line))")
    }
}

// MARK: - Python text semantics on UTF-8 bytes

/// The pieces of Python's text handling that the reference data pipelines depend on,
/// reproduced on UTF-8 bytes so a multi-MB corpus is never walked Character by Character.
/// Input must already be valid UTF-8.
enum PythonText {
    /// Byte length of the Python whitespace character (`str.isspace()`) starting at `i`, or 0.
    /// Python's set: U+0009–U+000D, U+001C–U+001F, U+0020, U+0085, U+00A0, U+1680,
    /// U+2000–U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
    @inline(__always)
    static func whitespaceLength(_ p: UnsafeBufferPointer<UInt8>, _ i: Int, _ end: Int) -> Int {
        let b0 = p[i]
        if b0 < 0x80 {
            return (b0 >= 0x09 && b0 <= 0x0D) || (b0 >= 0x1C && b0 <= 0x20) ? 1 : 0
        }
        if b0 == 0xC2, i + 1 < end { return p[i + 1] == 0x85 || p[i + 1] == 0xA0 ? 2 : 0 }
        guard i + 2 < end else { return 0 }
        let b1 = p[i + 1], b2 = p[i + 2]
        switch b0 {
        case 0xE1: return b1 == 0x9A && b2 == 0x80 ? 3 : 0
        case 0xE2:
            if b1 == 0x80 { return (b2 >= 0x80 && b2 <= 0x8A) || b2 == 0xA8 || b2 == 0xA9 || b2 == 0xAF ? 3 : 0 }
            return b1 == 0x81 && b2 == 0x9F ? 3 : 0
        case 0xE3: return b1 == 0x80 && b2 == 0x80 ? 3 : 0
        default: return 0
        }
    }

    /// Byte length of the UTF-8 sequence whose lead byte is `b0` (input is valid UTF-8).
    @inline(__always)
    static func sequenceLength(_ b0: UInt8) -> Int {
        b0 < 0x80 ? 1 : b0 < 0xE0 ? 2 : b0 < 0xF0 ? 3 : 4
    }

    /// True when `p[range]` is empty or only whitespace, i.e. `not s.strip()`.
    static func isBlank(_ p: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool {
        var i = range.lowerBound
        while i < range.upperBound {
            let w = whitespaceLength(p, i, range.upperBound)
            if w == 0 { return false }
            i += w
        }
        return true
    }

    /// The sub-range of `p[range]` left by Python's `str.strip()`.
    static func strip(_ p: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Range<Int> {
        var start = range.lowerBound
        while start < range.upperBound {
            let w = whitespaceLength(p, start, range.upperBound)
            if w == 0 { break }
            start += w
        }
        // Scan forward so multi-byte whitespace at the end is recognized from its lead byte.
        var end = start
        var i = start
        while i < range.upperBound {
            let w = whitespaceLength(p, i, range.upperBound)
            if w > 0 {
                i += w
            } else {
                i += sequenceLength(p[i])
                end = i
            }
        }
        return start..<end
    }

    /// Calls `body(content, terminated)` for each line as Python's text-mode iteration
    /// (`for line in open(path, encoding="utf-8")`) yields it: universal newlines, so "\n",
    /// "\r\n" and a lone "\r" all end a line and read back as "\n". `content` excludes the
    /// terminator; `terminated` is false only for a last line without one. No line is
    /// reported for an empty file or after a final terminator.
    static func forEachLine(_ p: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>, Bool) throws(FileError) -> Void) throws(FileError) {
        let n = p.count
        var start = 0
        var i = 0
        while i < n {
            let b = p[i]
            if b == 0x0A || b == 0x0D {
                try body(start..<i, true)
                i += (b == 0x0D && i + 1 < n && p[i + 1] == 0x0A) ? 2 : 1
                start = i
            } else {
                i += 1
            }
        }
        if start < n { try body(start..<n, false) }
    }
}
