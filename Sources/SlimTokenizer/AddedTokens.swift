import SlimIO

// Added tokens (tokenizer.json `added_tokens`): cut out of the text before the model sees it,
// as HF's AddedVocabulary does — tokens with `normalized: false` are matched on the raw text,
// the others on the normalized text; among overlapping candidates the leftmost, then longest,
// wins (Aho-Corasick LeftmostLongest).

struct AddedToken: Sendable {
    var content: String
    var id: Int32
    var special: Bool
    var singleWord: Bool
    var lstrip: Bool
    var rstrip: Bool
    var normalized: Bool
}

/// Leftmost-longest literal matcher over a small set of byte strings.
struct LiteralSetMatcher: Sendable {
    private var patterns: [[UInt8]] = []
    private var tokenIndex: [Int] = []
    /// Pattern indices by first byte, longest first.
    private var byFirstByte: [[Int]] = Array(repeating: [], count: 256)

    var isEmpty: Bool { patterns.isEmpty }

    mutating func add(_ bytes: [UInt8], token: Int) {
        guard let first = bytes.first else { return }
        let k = patterns.count
        patterns.append(bytes)
        tokenIndex.append(token)
        byFirstByte[Int(first)].append(k)
        byFirstByte[Int(first)].sort { patterns[$0].count > patterns[$1].count || (patterns[$0].count == patterns[$1].count && $0 < $1) }
    }

    /// The longest pattern starting exactly at `pos`, as (token index, end).
    @inline(__always)
    func longestMatch(_ p: UnsafePointer<UInt8>, _ pos: Int, _ end: Int) -> (Int, Int)? {
        guard pos < end else { return nil }
        for k in byFirstByte[Int(p[pos])] {
            let pat = patterns[k]
            if pos + pat.count <= end, pat.withUnsafeBufferPointer({ memcmpEqual(p + pos, $0.baseAddress!, pat.count) }) {
                return (tokenIndex[k], pos + pat.count)
            }
        }
        return nil
    }

    /// Non-overlapping matches in `p[start..<end]` as (start, end, token index) triples.
    func matches(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> [(Int, Int, Int)] {
        var out: [(Int, Int, Int)] = []
        var i = start
        while i < end {
            if let (k, e) = longestMatch(p, i, end) {
                out.append((i, e, k))
                i = e
            } else {
                i += 1
            }
        }
        return out
    }
}

/// The added vocabulary of a tokenizer.json.
struct AddedVocabulary: Sendable {
    private(set) var tokens: [AddedToken] = []
    /// Content bytes → index in `tokens` (exact bytes: Swift String keys would merge
    /// canonically equivalent tokens).
    private var indexForContent = ByteStringMap()
    private(set) var tokenForID: [Int32: Int] = [:]
    private var rawMatcher = LiteralSetMatcher()
    private var normalizedMatcher = LiteralSetMatcher()


    /// Parses `added_tokens`, assigning ids as HF's `AddedVocabulary::add_tokens` does: a
    /// token already in the model vocabulary (`vocabID`) keeps that id; any other gets the
    /// next id after the largest added id, or `vocabCount` (the number of vocabulary entries)
    /// if that is larger. The file's own "id" fields are not used (HF only warns when they
    /// disagree). A repeated content string updates the flags of the first occurrence.
    init(json: JSON?, normalizers: [NormalizerStep], vocabCount: Int, vocabID: (String) -> Int32?, path: String) throws(FileError) {
        guard let json, !json.isNull else { return }
        guard let list = json.array else { throw FileError(path, "\"added_tokens\" is not an array") }
        var maxID: Int32? = nil
        for (n, item) in list.enumerated() {
            guard let content = item["content"]?.string else {
                throw FileError(path, "added_tokens[\(n)] has no \"content\" string")
            }
            if content.isEmpty { continue }  // HF ignores empty tokens
            let special = item["special"]?.bool ?? false
            var token = AddedToken(content: content, id: -1, special: special,
                                   singleWord: item["single_word"]?.bool ?? false,
                                   lstrip: item["lstrip"]?.bool ?? false, rstrip: item["rstrip"]?.bool ?? false,
                                   normalized: item["normalized"]?.bool ?? !special)
            let existing = indexForContent.find(content)
            if existing >= 0 {
                token.id = tokens[Int(existing)].id
                tokens[Int(existing)] = token
                continue
            }
            if let v = vocabID(content) {
                token.id = v
            } else if let m = maxID, Int(m) >= vocabCount {
                guard m < Int32(maxVocabularyID) else { throw FileError(path, "too many added tokens") }
                token.id = m + 1
            } else {
                token.id = Int32(vocabCount)
            }
            maxID = max(maxID ?? token.id, token.id)
            indexForContent.insert(content, value: Int32(tokens.count))
            tokens.append(token)
        }
        for (index, token) in tokens.enumerated() {
            tokenForID[token.id] = index
            if token.normalized {
                normalizedMatcher.add(normalizers.normalize(Array(token.content.utf8)), token: index)
            } else {
                rawMatcher.add(Array(token.content.utf8), token: index)
            }
        }
    }

    func token(forID id: Int32) -> AddedToken? {
        tokenForID[id].map { tokens[$0] }
    }

    func id(forContent content: String) -> Int32? {
        let k = indexForContent.find(content)
        return k >= 0 ? tokens[Int(k)].id : nil
    }

    /// HF's `is_special_token`: the string is the content of a special added token.
    func isSpecial(content: String) -> Bool {
        let k = indexForContent.find(content)
        return k >= 0 && tokens[Int(k)].special
    }

    /// Cuts the matching added tokens out of every text split.
    func extract(from text: inout SegmentedText, normalizedPass: Bool) {
        let matcher = normalizedPass ? normalizedMatcher : rawMatcher
        if matcher.isEmpty { return }
        var newSegments = [Segment]()
        text.bytes.withUnsafeBufferPointer { all in
            guard let p = all.baseAddress else { return }
            for seg in text.segments {
                guard seg.isText else { newSegments.append(seg); continue }
                var startOffset = seg.start
                for (ms, me, k) in matcher.matches(p, seg.start, seg.end) {
                    let t = tokens[k]
                    var start = ms, stop = me
                    if t.singleWord {
                        let startSpace = start == seg.start || !endsWithWord(p, seg.start, start)
                        let stopSpace = stop == seg.end || !startsWithWord(p, stop, seg.end)
                        if !startSpace || !stopSpace { continue }
                    }
                    if t.lstrip { start = max(trailingWhitespaceStart(p, seg.start, start), startOffset) }
                    if t.rstrip { stop = leadingWhitespaceEnd(p, stop, seg.end) }
                    // A previous rstrip may already have consumed the start of this match.
                    start = max(start, startOffset)
                    if startOffset < start {
                        newSegments.append(Segment(start: startOffset, end: start, token: -1,
                                                   atOrigin: seg.atOrigin && startOffset == seg.start))
                    }
                    newSegments.append(Segment(start: start, end: stop, token: t.id, atOrigin: false))
                    startOffset = stop
                }
                if startOffset < seg.end {
                    newSegments.append(Segment(start: startOffset, end: seg.end, token: -1,
                                               atOrigin: seg.atOrigin && startOffset == seg.start))
                }
            }
        }
        text.segments = newSegments
    }
}

// MARK: - Word and space tests (Rust `regex` crate classes)

private func lastScalar(_ p: UnsafePointer<UInt8>, _ lower: Int, _ end: Int) -> (UInt32, Int)? {
    guard end > lower else { return nil }
    var i = end - 1
    while i > lower && (p[i] & 0xC0) == 0x80 { i -= 1 }
    return (decodeScalar(p, i, end).0, i)
}

/// `\w$` on `p[lower..<end]`.
private func endsWithWord(_ p: UnsafePointer<UInt8>, _ lower: Int, _ end: Int) -> Bool {
    guard let (c, _) = lastScalar(p, lower, end) else { return false }
    return UnicodeClasses.flags(c).contains(.word)
}

/// `^\w` on `p[start..<end]`.
private func startsWithWord(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
    guard start < end else { return false }
    return UnicodeClasses.flags(decodeScalar(p, start, end).0).contains(.word)
}

/// Start of the whitespace run ending at `end` (`\s*$`).
private func trailingWhitespaceStart(_ p: UnsafePointer<UInt8>, _ lower: Int, _ end: Int) -> Int {
    var e = end
    while let (c, i) = lastScalar(p, lower, e), UnicodeClasses.flags(c).contains(.whitespace) { e = i }
    return e
}

/// End of the whitespace run starting at `start` (`^\s*`).
private func leadingWhitespaceEnd(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> Int {
    var i = start
    while i < end {
        let (c, n) = decodeScalar(p, i, end)
        if !UnicodeClasses.flags(c).contains(.whitespace) { break }
        i += n
    }
    return i
}
