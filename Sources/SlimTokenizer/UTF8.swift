// UTF-8 helpers shared by the pipelines.
//
// Text inside the pipelines is always well-formed UTF-8 (it comes from a Swift `String` and
// every transform writes whole scalars), so the hot-path decoder can trust lead bytes. The
// two lossy decoders reproduce, byte for byte, how the reference libraries turn arbitrary
// token bytes back into text: they differ in how many U+FFFD an invalid sequence becomes.

// MARK: - Decoding well-formed text

/// Length of the UTF-8 sequence introduced by `lead` (1 for continuation/invalid bytes, so a
/// scan always advances).
@inline(__always)
func utf8Length(lead: UInt8) -> Int {
    if lead < 0x80 { return 1 }
    if lead >= 0xF0 { return 4 }
    if lead >= 0xE0 { return 3 }
    if lead >= 0xC0 { return 2 }
    return 1
}

/// Decodes the scalar starting at `p[i]` (well-formed input; never reads past `end`).
/// Returns the scalar value and its length in bytes.
@inline(__always)
func decodeScalar(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> (UInt32, Int) {
    let b0 = p[i]
    if b0 < 0x80 { return (UInt32(b0), 1) }
    let n = utf8Length(lead: b0)
    if n == 1 || i + n > end { return (0xFFFD, 1) }
    switch n {
    case 2: return ((UInt32(b0 & 0x1F) << 6) | UInt32(p[i + 1] & 0x3F), 2)
    case 3: return ((UInt32(b0 & 0x0F) << 12) | (UInt32(p[i + 1] & 0x3F) << 6) | UInt32(p[i + 2] & 0x3F), 3)
    default:
        return ((UInt32(b0 & 0x07) << 18) | (UInt32(p[i + 1] & 0x3F) << 12) | (UInt32(p[i + 2] & 0x3F) << 6)
                    | UInt32(p[i + 3] & 0x3F), 4)
    }
}

/// Appends the UTF-8 encoding of `scalar` (which must be a valid scalar value).
@inline(__always)
func appendUTF8(_ scalar: UInt32, to out: inout [UInt8]) {
    switch scalar {
    case 0..<0x80:
        out.append(UInt8(scalar))
    case 0x80..<0x800:
        out.append(UInt8(0xC0 | (scalar >> 6)))
        out.append(UInt8(0x80 | (scalar & 0x3F)))
    case 0x800..<0x10000:
        out.append(UInt8(0xE0 | (scalar >> 12)))
        out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (scalar & 0x3F)))
    default:
        out.append(UInt8(0xF0 | (scalar >> 18)))
        out.append(UInt8(0x80 | ((scalar >> 12) & 0x3F)))
        out.append(UInt8(0x80 | ((scalar >> 6) & 0x3F)))
        out.append(UInt8(0x80 | (scalar & 0x3F)))
    }
}

let replacementCharacterUTF8: [UInt8] = [0xEF, 0xBF, 0xBD]

// MARK: - Validation of arbitrary bytes

/// Length of the well-formed scalar at `bytes[i]`, or the length of the maximal invalid
/// subpart there (negated). Follows the Unicode "maximal subpart" rule used by Rust's
/// `String::from_utf8_lossy`: a truncated but so-far-valid sequence counts as one unit.
@inline(__always)
private func scanScalar(_ b: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int {
    let n = b.count
    let b0 = b[i]
    if b0 < 0x80 { return 1 }
    let width: Int
    var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
    switch b0 {
    case 0xC2...0xDF: width = 2
    case 0xE0: width = 3; lo = 0xA0
    case 0xE1...0xEC, 0xEE...0xEF: width = 3
    case 0xED: width = 3; hi = 0x9F
    case 0xF0: width = 4; lo = 0x90
    case 0xF1...0xF3: width = 4
    case 0xF4: width = 4; hi = 0x8F
    default: return -1
    }
    // Second byte has the lead-specific range; later ones are plain continuation bytes.
    guard i + 1 < n, b[i + 1] >= lo, b[i + 1] <= hi else { return -1 }
    var k = 2
    while k < width {
        guard i + k < n, b[i + k] >= 0x80, b[i + k] <= 0xBF else { return -k }
        k += 1
    }
    return width
}

/// Rust `String::from_utf8_lossy`: each maximal invalid subpart becomes one U+FFFD.
/// (HF `ByteLevel` decoder.)
func decodeUTF8LossyMaximalSubpart(_ bytes: [UInt8]) -> String {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count)
    bytes.withUnsafeBufferPointer { b in
        var i = 0
        while i < b.count {
            let r = scanScalar(b, i)
            if r > 0 {
                for k in 0..<r { out.append(b[i + k]) }
                i += r
            } else {
                out.append(contentsOf: replacementCharacterUTF8)
                i += -r
            }
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// SentencePiece's rule: a well-formed scalar is kept, otherwise ONE byte becomes U+FFFD and
/// decoding resumes at the next byte.
func appendUTF8LossyPerByte(_ bytes: [UInt8], to out: inout [UInt8]) {
    bytes.withUnsafeBufferPointer { b in
        var i = 0
        while i < b.count {
            let r = scanScalar(b, i)
            if r > 0 {
                for k in 0..<r { out.append(b[i + k]) }
                i += r
            } else {
                out.append(contentsOf: replacementCharacterUTF8)
                i += 1
            }
        }
    }
}

/// True when `bytes` is entirely well-formed UTF-8.
func isValidUTF8(_ bytes: [UInt8]) -> Bool {
    bytes.withUnsafeBufferPointer { b in
        var i = 0
        while i < b.count {
            let r = scanScalar(b, i)
            if r <= 0 { return false }
            i += r
        }
        return true
    }
}
