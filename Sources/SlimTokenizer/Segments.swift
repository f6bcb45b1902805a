// The text being tokenized, as Hugging Face's PreTokenizedString sees it: one UTF-8 buffer
// and an ordered list of splits, each either an added token (already an id) or text still
// to be normalized / pre-tokenized / modelled.

/// One split of the input.
struct Segment {
    var start: Int
    var end: Int
    /// Added-token id, or -1 for text.
    var token: Int32
    /// True when this split begins at offset 0 of the caller's text (Metaspace's
    /// `prepend_scheme: "first"` only prepends there).
    var atOrigin: Bool

    var isText: Bool { token < 0 }
}

struct SegmentedText {
    var bytes: [UInt8]
    var segments: [Segment]

    /// The whole of `text` as one text split (no split at all when empty, as HF drops empty
    /// splits).
    init(_ text: String) {
        bytes = Array(text.utf8)
        segments = bytes.isEmpty ? [] : [Segment(start: 0, end: bytes.count, token: -1, atOrigin: true)]
    }

    /// Rewrites every text split through `transform`, which appends the new bytes of one
    /// split to `out` and may split it further by appending sub-ranges to `pieces` as flat
    /// (start, end) pairs of absolute offsets in `out` (no pieces: everything appended is one
    /// split). Token splits pass through. Empty results are dropped; `atOrigin` is kept only
    /// by a piece starting where its parent did.
    mutating func rewriteText(
        _ transform: (_ input: UnsafeBufferPointer<UInt8>, _ atOrigin: Bool, _ out: inout [UInt8], _ pieces: inout [Int]) -> Void
    ) {
        var out = [UInt8]()
        out.reserveCapacity(bytes.count + bytes.count / 8 + 16)
        var newSegments = [Segment]()
        newSegments.reserveCapacity(segments.count)
        var pieces = [Int]()
        bytes.withUnsafeBufferPointer { all in
            for seg in segments {
                if !seg.isText {
                    newSegments.append(Segment(start: 0, end: 0, token: seg.token, atOrigin: seg.atOrigin))
                    continue
                }
                let input = UnsafeBufferPointer(rebasing: all[seg.start..<seg.end])
                let base = out.count
                pieces.removeAll(keepingCapacity: true)
                transform(input, seg.atOrigin, &out, &pieces)
                if pieces.isEmpty {
                    if out.count > base {
                        newSegments.append(Segment(start: base, end: out.count, token: -1, atOrigin: seg.atOrigin))
                    }
                } else {
                    var k = 0
                    while k + 1 < pieces.count {
                        let s = pieces[k], e = pieces[k + 1]
                        if e > s {
                            newSegments.append(Segment(start: s, end: e, token: -1, atOrigin: seg.atOrigin && s == base))
                        }
                        k += 2
                    }
                }
            }
        }
        bytes = out
        segments = newSegments
    }

    /// Splits text splits in place (bytes unchanged). `split` receives the buffer and a
    /// split's range and appends sub-ranges as flat (start, end) pairs.
    mutating func splitText(_ split: (_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ out: inout [Int]) -> Void) {
        var newSegments = [Segment]()
        newSegments.reserveCapacity(segments.count * 2)
        var pieces = [Int]()
        bytes.withUnsafeBufferPointer { all in
            guard let p = all.baseAddress else { return }
            for seg in segments {
                if !seg.isText || seg.end <= seg.start {
                    if !seg.isText { newSegments.append(seg) }
                    continue
                }
                pieces.removeAll(keepingCapacity: true)
                split(p, seg.start, seg.end, &pieces)
                var k = 0
                while k + 1 < pieces.count {
                    let s = pieces[k], e = pieces[k + 1]
                    if e > s {
                        newSegments.append(Segment(start: s, end: e, token: -1, atOrigin: seg.atOrigin && s == seg.start))
                    }
                    k += 2
                }
            }
        }
        segments = newSegments
    }
}

// MARK: - Split behaviours

/// How a pattern's matches become splits (HF `SplitDelimiterBehavior`).
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// Turns sorted, non-overlapping `matches` (flat pairs) inside `[start, end)` into splits
/// according to `behavior`, exactly as `NormalizedString::split` does: gaps and matches
/// alternate to cover the range (`invert` swaps which is which), then matches are dropped,
/// kept alone, glued to a neighbour, or merged with adjacent matches.
func applySplitBehavior(matches: [Int], start: Int, end: Int, behavior: SplitBehavior, invert: Bool, into out: inout [Int]) {
    // Covering list of (start, end, isMatch).
    var cover = [(Int, Int, Bool)]()
    cover.reserveCapacity(matches.count + 2)
    var prev = start
    var k = 0
    while k + 1 < matches.count {
        let s = matches[k], e = matches[k + 1]
        if s > prev { cover.append((prev, s, invert)) }
        cover.append((s, e, !invert))
        prev = e
        k += 2
    }
    if prev < end { cover.append((prev, end, invert)) }

    switch behavior {
    case .isolated:
        for (s, e, _) in cover { out.append(s); out.append(e) }
    case .removed:
        for (s, e, m) in cover where !m { out.append(s); out.append(e) }
    case .contiguous:
        var previousMatch = false
        for (s, e, m) in cover {
            if m == previousMatch, out.count >= 2 {
                out[out.count - 1] = e
            } else {
                out.append(s); out.append(e)
            }
            previousMatch = m
        }
    case .mergedWithPrevious:
        var previousMatch = false
        for (s, e, m) in cover {
            if m && !previousMatch, out.count >= 2 {
                out[out.count - 1] = e
            } else {
                out.append(s); out.append(e)
            }
            previousMatch = m
        }
    case .mergedWithNext:
        // Same rule walking backwards: a match is glued to the split that follows it.
        var reversed = [(Int, Int)]()
        var previousMatch = false
        for (s, e, m) in cover.reversed() {
            if m && !previousMatch, !reversed.isEmpty {
                reversed[reversed.count - 1].0 = s
            } else {
                reversed.append((s, e))
            }
            previousMatch = m
        }
        for (s, e) in reversed.reversed() { out.append(s); out.append(e) }
    }
}

/// Flat match pairs for each single character satisfying `pred` (HF's `Fn(char) -> bool`
/// pattern: every matching character is its own match).
func characterMatches(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ pred: (UInt32) -> Bool) -> [Int] {
    var m = [Int]()
    var i = start
    while i < end {
        let (c, n) = decodeScalar(p, i, end)
        if pred(c) { m.append(i); m.append(i + n) }
        i += n
    }
    return m
}

/// Flat match pairs of every non-overlapping occurrence of `needle` (leftmost first).
func literalMatches(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, _ needle: [UInt8]) -> [Int] {
    var m = [Int]()
    guard !needle.isEmpty else { return m }
    let n = needle.count
    let first = needle[0]
    var i = start
    needle.withUnsafeBufferPointer { nd in
        while i + n <= end {
            if p[i] == first && memcmpEqual(p + i, nd.baseAddress!, n) {
                m.append(i); m.append(i + n)
                i += n
            } else {
                i += 1
            }
        }
    }
    return m
}
