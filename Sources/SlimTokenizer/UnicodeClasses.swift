// Character classes exactly as the reference engines see them.
//
// Hugging Face `tokenizers` evaluates Split/ByteLevel regexes with Oniguruma, whose Unicode
// tables are version 16.0; Swift's are newer. Checked over every scalar against
// tokenizers 0.23.3: `\p{L}` / `\p{N}` equal Swift's general category restricted to
// characters assigned by Unicode 16.0, and `\s` equals the White_Space property. The Digits
// pre-tokenizer uses Rust's `char::is_numeric` (categories Nd/Nl/No), whose tables matched
// Swift's with no age cut. `\w` in added-token single-word checks is the Rust `regex` crate's
// (Alphabetic, marks, Nd, Pc, Join_Control).

struct CharFlags: OptionSet {
    let rawValue: UInt8
    /// Oniguruma `\p{L}` (Unicode 16.0).
    static let regexLetter = CharFlags(rawValue: 1)
    /// Oniguruma `\p{N}` (Unicode 16.0).
    static let regexNumber = CharFlags(rawValue: 2)
    /// White_Space (Oniguruma `\s`, Rust `char::is_whitespace`, regex-crate `\s`).
    static let whitespace = CharFlags(rawValue: 4)
    /// Rust `char::is_numeric`.
    static let numeric = CharFlags(rawValue: 8)
    /// Rust regex-crate `\w`.
    static let word = CharFlags(rawValue: 16)
}

enum UnicodeClasses {
    /// Flags for every BMP scalar (surrogates get none), built once on first use (~64 KiB).
    private static let bmp: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 0x10000)
        for v in 0..<0x10000 {
            if let s = Unicode.Scalar(UInt32(v)) { table[v] = compute(s).rawValue }
        }
        return table
    }()

    @inline(__always)
    static func flags(_ scalar: UInt32) -> CharFlags {
        if scalar < 0x10000 { return CharFlags(rawValue: bmp.withUnsafeBufferPointer { $0[Int(scalar)] }) }
        guard let s = Unicode.Scalar(scalar) else { return [] }
        return compute(s)
    }

    private static func compute(_ s: Unicode.Scalar) -> CharFlags {
        let p = s.properties
        var f: CharFlags = []
        let inUnicode16: Bool = {
            guard let age = p.age else { return false }
            return age.major < 16 || (age.major == 16 && age.minor == 0)
        }()
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            if inUnicode16 { f.insert(.regexLetter) }
        case .decimalNumber, .letterNumber, .otherNumber:
            f.insert(.numeric)
            if inUnicode16 { f.insert(.regexNumber) }
        default: break
        }
        if p.isWhitespace { f.insert(.whitespace) }
        switch p.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation:
            f.insert(.word)
        default:
            if p.isAlphabetic || p.isJoinControl { f.insert(.word) }
        }
        return f
    }
}
