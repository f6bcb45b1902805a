// SentencePiece's text normalizer (normalizer.cc): optional character-map rewriting from a
// precompiled Darts double-array trie, then whitespace handling — collapse/trim spaces when
// `remove_extra_whitespaces`, a leading "▁" when `add_dummy_prefix`, and ' ' → "▁" when
// `escape_whitespaces`.

struct SentencePieceNormalizer: Sendable {
    var addDummyPrefix: Bool
    var removeExtraWhitespaces: Bool
    var escapeWhitespaces: Bool
    var treatWhitespaceAsSuffix: Bool
    /// Precompiled character map, nil for the identity normalizer.
    var charsMap: PrecompiledCharsMap?
    /// User-defined pieces are never rewritten by the character map.
    var userDefined: LiteralSetMatcher

    /// Normalizes `text` (any bytes; invalid UTF-8 becomes U+FFFD one byte at a time).
    func normalize(_ text: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        if text.isEmpty { return out }
        out.reserveCapacity(text.count + text.count / 4 + 3)
        let space: [UInt8] = escapeWhitespaces ? metaspaceUTF8 : [0x20]
        text.withUnsafeBufferPointer { buf in
            let p = buf.baseAddress!
            let end = buf.count
            var pos = 0
            var piece = [UInt8]()
            if removeExtraWhitespaces {
                // Ignore leading spaces (after normalization of each prefix).
                while pos < end {
                    let consumed = normalizePrefix(p, pos, end, into: &piece)
                    if piece != [0x20] { break }
                    pos += consumed
                }
            }
            if pos >= end { return }
            if !treatWhitespaceAsSuffix && addDummyPrefix { out += space }
            var isPrevSpace = removeExtraWhitespaces
            while pos < end {
                let consumed = normalizePrefix(p, pos, end, into: &piece)
                var start = 0
                if isPrevSpace { while start < piece.count && piece[start] == 0x20 { start += 1 } }
                if start < piece.count {
                    for k in start..<piece.count {
                        if escapeWhitespaces && piece[k] == 0x20 { out += metaspaceUTF8 } else { out.append(piece[k]) }
                    }
                    isPrevSpace = piece.last == 0x20
                }
                pos += consumed
                if !removeExtraWhitespaces { isPrevSpace = false }
            }
            if removeExtraWhitespaces {
                while out.count >= space.count && Array(out[(out.count - space.count)...]) == space {
                    out.removeLast(space.count)
                }
            }
            if treatWhitespaceAsSuffix && addDummyPrefix { out += space }
        }
        return out
    }

    /// Normalized form of the longest rule at `p[pos...]` into `piece`; returns bytes consumed.
    private func normalizePrefix(_ p: UnsafePointer<UInt8>, _ pos: Int, _ end: Int, into piece: inout [UInt8]) -> Int {
        piece.removeAll(keepingCapacity: true)
        if let (_, e) = userDefined.longestMatch(p, pos, end) {
            piece.append(contentsOf: UnsafeBufferPointer(start: p + pos, count: e - pos))
            return e - pos
        }
        if let map = charsMap, let (length, replacement) = map.longestMatch(p + pos, end - pos) {
            piece += replacement
            return length
        }
        let n = strictScalarLength(p, pos, end)
        if n == 0 {
            piece += replacementCharacterUTF8  // malformed byte: U+FFFD, one byte consumed
            return 1
        }
        piece.append(contentsOf: UnsafeBufferPointer(start: p + pos, count: n))
        return n
    }
}

/// Length of the well-formed scalar at `p[i]`, or 0.
func strictScalarLength(_ p: UnsafePointer<UInt8>, _ i: Int, _ end: Int) -> Int {
    let b0 = p[i]
    if b0 < 0x80 { return 1 }
    var width = 0
    var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
    switch b0 {
    case 0xC2...0xDF: width = 2
    case 0xE0: width = 3; lo = 0xA0
    case 0xE1...0xEC, 0xEE...0xEF: width = 3
    case 0xED: width = 3; hi = 0x9F
    case 0xF0: width = 4; lo = 0x90
    case 0xF1...0xF3: width = 4
    case 0xF4: width = 4; hi = 0x8F
    default: return 0
    }
    guard i + width <= end, p[i + 1] >= lo, p[i + 1] <= hi else { return 0 }
    for k in 2..<width where p[i + k] < 0x80 || p[i + k] > 0xBF { return 0 }
    return width
}

// MARK: - Precompiled character map

/// SentencePiece's precompiled normalization rules: a little-endian u32 trie size, a Darts
/// double-array trie over UTF-8 prefixes, then NUL-terminated replacement strings that the
/// trie's values index.
struct PrecompiledCharsMap: Sendable {
    private let units: [UInt32]
    private let strings: [UInt8]

    init?(_ blob: [UInt8]) {
        guard blob.count > 4 else { return nil }
        let trieSize = Int(UInt32(blob[0]) | UInt32(blob[1]) << 8 | UInt32(blob[2]) << 16 | UInt32(blob[3]) << 24)
        guard trieSize < blob.count - 4, trieSize % 4 == 0, trieSize > 0 else { return nil }
        var units = [UInt32](repeating: 0, count: trieSize / 4)
        for k in 0..<units.count {
            let o = 4 + 4 * k
            units[k] = UInt32(blob[o]) | UInt32(blob[o + 1]) << 8 | UInt32(blob[o + 2]) << 16 | UInt32(blob[o + 3]) << 24
        }
        self.units = units
        self.strings = Array(blob[(4 + trieSize)...])
    }

    /// Longest rule matching a prefix of `p[0..<count]`: (bytes matched, replacement).
    func longestMatch(_ p: UnsafePointer<UInt8>, _ count: Int) -> (Int, [UInt8])? {
        @inline(__always) func offset(_ u: UInt32) -> Int { Int((u >> 10) << ((u & (1 << 9)) >> 6)) }
        @inline(__always) func label(_ u: UInt32) -> UInt32 { u & ((1 << 31) | 0xFF) }
        @inline(__always) func hasLeaf(_ u: UInt32) -> Bool { (u >> 8) & 1 == 1 }
        @inline(__always) func value(_ u: UInt32) -> Int { Int(u & ((1 << 31) - 1)) }
        guard !units.isEmpty else { return nil }
        var nodePos = offset(units[0])
        var best: (Int, Int)? = nil
        for i in 0..<count {
            nodePos ^= Int(p[i])
            guard nodePos >= 0, nodePos < units.count else { break }
            let unit = units[nodePos]
            if label(unit) != UInt32(p[i]) { break }
            nodePos ^= offset(unit)
            guard nodePos >= 0, nodePos < units.count else { break }
            if hasLeaf(unit) { best = (i + 1, value(units[nodePos])) }
        }
        guard let (length, v) = best, v < strings.count else { return nil }
        var e = v
        while e < strings.count && strings[e] != 0 { e += 1 }
        return (length, Array(strings[v..<e]))
    }
}
