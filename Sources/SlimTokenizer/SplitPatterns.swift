// Hand-written matchers for the pre-tokenization regexes real tokenizers use.
//
// A general regex engine would be a large dependency for three patterns; instead each
// supported pattern is recognised by its exact source text and evaluated by a matcher that
// follows the backtracking engine's semantics (ordered alternation, greedy quantifiers,
// lookahead) over Unicode scalars. Any other pattern is refused at load time.

/// A pre-tokenization regex we can evaluate.
enum SplitPattern: Equatable, Sendable {
    /// How the leading contraction alternatives compare letters.
    enum ContractionCase: Equatable, Sendable {
        /// `'s|'t|…` (GPT-2): exact ASCII lower case.
        case sensitive
        /// `(?i:'s|'t|…)` under Oniguruma: ASCII case-insensitive, and `s` also matches
        /// U+017F LATIN SMALL LETTER LONG S (its case fold) — verified against tokenizers.
        case foldOniguruma
        /// `(?:'[sS]|'[tT]|…)` (llama.cpp's rewrite): ASCII case-insensitive only.
        case asciiInsensitive
    }

    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// tiktoken cl100k family (LLaMA-3 with `\p{N}{1,3}`, Qwen2 with `\p{N}`):
    /// `(?i:'s|…)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    case cl100k(maxDigits: Int, contractions: ContractionCase)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

    /// The pattern for a regex source string, or nil if it is not one we implement.
    static func recognize(_ source: String) -> SplitPattern? {
        if source == gpt2Source { return .gpt2 }
        let tails: [(String, Int)] = [
            (#"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, 3),
            (#"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#, 1),
        ]
        let heads: [(String, ContractionCase)] = [
            (#"(?i:'s|'t|'re|'ve|'m|'ll|'d)"#, .foldOniguruma),
            (#"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"#, .asciiInsensitive),
        ]
        for (head, c) in heads {
            for (tail, digits) in tails where source == head + tail {
                return .cl100k(maxDigits: digits, contractions: c)
            }
        }
        return nil
    }

    /// Appends `[start, end)` byte offsets of every match in `p[start..<end]` (the range is
    /// the whole subject: anchors and lookahead see its end as end of text).
    func matches(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [Int]) {
        var m = Matcher(p: p, end: end)
        var i = start
        while i < end {
            let e: Int
            switch self {
            case .gpt2: e = m.matchGPT2(at: i)
            case .cl100k(let digits, let c): e = m.matchCL100K(at: i, maxDigits: digits, contractions: c)
            }
            if e > i {
                out.append(i)
                out.append(e)
                i = e
            } else {
                i += utf8Length(lead: p[i])  // no match here: the engine advances one character
            }
        }
    }
}

// MARK: - Matcher

private struct Matcher {
    let p: UnsafePointer<UInt8>
    let end: Int

    @inline(__always) func scalar(_ i: Int) -> (UInt32, Int) { decodeScalar(p, i, end) }
    @inline(__always) func flags(_ c: UInt32) -> CharFlags {
        if c < 0x80 { return asciiFlags[Int(c)] }
        return UnicodeClasses.flags(c)
    }
    @inline(__always) func isLetter(_ c: UInt32) -> Bool { flags(c).contains(.regexLetter) }
    @inline(__always) func isNumber(_ c: UInt32) -> Bool { flags(c).contains(.regexNumber) }
    @inline(__always) func isSpace(_ c: UInt32) -> Bool { flags(c).contains(.whitespace) }
    /// `[^\s\p{L}\p{N}]`
    @inline(__always) func isOther(_ c: UInt32) -> Bool {
        flags(c).isDisjoint(with: [.whitespace, .regexLetter, .regexNumber])
    }

    /// End of the run of characters satisfying `pred` starting at `i` (== i if none).
    @inline(__always) func run(from i: Int, _ pred: (UInt32) -> Bool) -> Int {
        var j = i
        while j < end {
            let (c, n) = scalar(j)
            if !pred(c) { break }
            j += n
        }
        return j
    }

    /// End of `'s|'t|'re|'ve|'m|'ll|'d` at `i`, or `i`.
    func contraction(at i: Int, _ mode: SplitPattern.ContractionCase) -> Int {
        guard p[i] == UInt8(ascii: "'"), i + 1 < end else { return i }
        @inline(__always) func letter(_ j: Int, _ lower: UInt8) -> Int {
            // Returns the byte length of a matching letter at j, or 0.
            guard j < end else { return 0 }
            let b = p[j]
            if b == lower { return 1 }
            if mode != .sensitive, b == lower - 32 { return 1 }
            if mode == .foldOniguruma, lower == UInt8(ascii: "s"), b == 0xC5, j + 1 < end, p[j + 1] == 0xBF {
                return 2  // U+017F folds to "s"
            }
            return 0
        }
        let j = i + 1
        for single in [UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d")] {
            let n = letter(j, single)
            if n > 0 { return j + n }
        }
        for (a, b) in [(UInt8(ascii: "r"), UInt8(ascii: "e")), (UInt8(ascii: "v"), UInt8(ascii: "e")),
                       (UInt8(ascii: "l"), UInt8(ascii: "l"))] {
            let n1 = letter(j, a)
            if n1 > 0 {
                let n2 = letter(j + n1, b)
                if n2 > 0 { return j + n1 + n2 }
            }
        }
        return i
    }

    /// `\s+(?!\S)|\s+` at `i` (c = scalar at i, known to be whitespace).
    func whitespaceTail(at i: Int) -> Int {
        // Longest run, then give back its last character if a non-space follows, as the
        // backtracking `\s+(?!\S)` does; a single space before a non-space is taken by `\s+`.
        var lastStart = i
        var j = i
        while j < end {
            let (c, n) = scalar(j)
            if !isSpace(c) { break }
            lastStart = j
            j += n
        }
        if j == end { return j }
        return lastStart > i ? lastStart : j
    }

    mutating func matchGPT2(at i: Int) -> Int {
        let c0 = contraction(at: i, .sensitive)
        if c0 > i { return c0 }
        // ` ?X+` for X in letters / numbers / others: the optional space is tried first.
        let (c, n) = scalar(i)
        var j = i
        var next = c
        if c == 0x20, i + n < end {
            j = i + n
            next = scalar(j).0
        }
        if isLetter(next) { return run(from: j) { isLetter($0) } }
        if isNumber(next) { return run(from: j) { isNumber($0) } }
        if isOther(next) { return run(from: j) { isOther($0) } }
        if isSpace(c) { return whitespaceTail(at: i) }
        return i
    }

    mutating func matchCL100K(at i: Int, maxDigits: Int, contractions: SplitPattern.ContractionCase) -> Int {
        let c0 = contraction(at: i, contractions)
        if c0 > i { return c0 }
        let (c, n) = scalar(i)
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if isLetter(c) { return run(from: i) { isLetter($0) } }
        if c != 0x0D, c != 0x0A, !isNumber(c), i + n < end, isLetter(scalar(i + n).0) {
            return run(from: i + n) { isLetter($0) }
        }
        // \p{N}{1,k}
        if isNumber(c) {
            var j = i
            var k = 0
            while k < maxDigits, j < end {
                let (d, dn) = scalar(j)
                if !isNumber(d) { break }
                j += dn
                k += 1
            }
            return j
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var j = i
        if c == 0x20, i + n < end { j = i + n }
        if j < end, isOther(scalar(j).0) {
            let k = run(from: j) { isOther($0) }
            return run(from: k) { $0 == 0x0D || $0 == 0x0A }
        }
        guard isSpace(c) else { return i }
        // \s*[\r\n]+ : the whitespace run up to and including its last \r or \n.
        var lastNewlineEnd = -1
        var r = i
        while r < end {
            let (d, dn) = scalar(r)
            if !isSpace(d) { break }
            if d == 0x0D || d == 0x0A { lastNewlineEnd = r + dn }
            r += dn
        }
        if lastNewlineEnd > 0 { return lastNewlineEnd }
        return whitespaceTail(at: i)
    }
}

/// Flags of the ASCII range, precomputed (the common case in every corpus).
private let asciiFlags: [CharFlags] = (0..<128).map { UnicodeClasses.flags(UInt32($0)) }
