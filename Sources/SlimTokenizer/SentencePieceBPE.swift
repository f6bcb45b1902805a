// SentencePiece's BPE encoder (bpe_model.cc) and decoder (sentencepiece_processor.cc).
//
// Encoding: the normalized text is split into characters (user-defined pieces are matched
// first and frozen), then the adjacent pair whose concatenation is a piece with the HIGHEST
// score is merged, ties to the leftmost, until no adjacent pair forms a piece. Unused pieces
// are re-split into the pair that formed them; unknown results become byte pieces when byte
// fallback is on. There is no pre-tokenization: the whole text is one sequence, but when no
// piece can span the start of a "▁" run we process such runs independently (same result,
// see `cutBeforeMetaspace`) and cache repeated ones. Without byte fallback, consecutive
// unknown results become ONE unknown id (SentencePieceProcessor merges them).

struct SentencePieceScratch {
    var start: [Int32] = []
    var len: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var freeze: [Bool] = []
    var heap = PairHeap()
    /// Merged unused piece → byte length of the left part of its most recent candidate pair.
    var revMerge: [[UInt8]: Int] = [:]
    var cache = ByteStringMap(capacity: 1024)
    var cacheStart: [Int32] = []
    var cacheCount: [Int32] = []
    var cacheIDs: [Int32] = []
}

/// Heap priority of a score: higher scores pop first (`-0.0` equals `0.0` as in C++).
@inline(__always) private func scoreKey(_ score: Float) -> UInt64 {
    let f = score == 0 ? Float(0) : score
    let b = f.bitPattern
    let ordered = (b & 0x8000_0000) != 0 ? ~b : b | 0x8000_0000
    return UInt64(~ordered) << 32
}

extension SentencePieceModel {
    /// Appends the ids of `text` (no BOS/EOS).
    func encode(_ text: String, into out: inout [Int32]) {
        let normalized = normalizer.normalize(Array(text.utf8))
        guard !normalized.isEmpty else { return }
        let first = out.count
        defer { if !byteFallback { mergeUnknownRuns(&out, from: first) } }
        var s = SentencePieceScratch()
        normalized.withUnsafeBufferPointer { buf in
            let p = buf.baseAddress!
            let end = buf.count
            guard cutBeforeMetaspace else {
                encodeSegment(p, 0, end, into: &out, scratch: &s)
                return
            }
            var segStart = 0
            var i = 1
            while i + 3 <= end {
                if p[i] == 0xE2, p[i + 1] == 0x96, p[i + 2] == 0x81,
                   !(i >= 3 && p[i - 3] == 0xE2 && p[i - 2] == 0x96 && p[i - 1] == 0x81) {
                    encodeCached(p, segStart, i, into: &out, scratch: &s)
                    segStart = i
                    i += 3
                } else {
                    i += 1
                }
            }
            encodeCached(p, segStart, end, into: &out, scratch: &s)
        }
    }

    /// Collapses each run of unknown ids in `ids[from...]` into one.
    private func mergeUnknownRuns(_ ids: inout [Int32], from: Int) {
        var w = from
        for r in from..<ids.count {
            if ids[r] == unkID && w > from && ids[w - 1] == unkID { continue }
            ids[w] = ids[r]
            w += 1
        }
        ids.removeSubrange(w...)
    }

    private func encodeCached(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [Int32], scratch s: inout SentencePieceScratch) {
        let n = end - start
        guard n > 0 else { return }
        let cacheable = n <= BPEScratch.maxCachedWordBytes
        if cacheable {
            let e = s.cache.find(p + start, n)
            if e >= 0 {
                let a = Int(s.cacheStart[Int(e)]), c = Int(s.cacheCount[Int(e)])
                out.append(contentsOf: s.cacheIDs[a..<(a + c)])
                return
            }
        }
        let before = out.count
        encodeSegment(p, start, end, into: &out, scratch: &s)
        if cacheable && s.cache.count < BPEScratch.maxCacheEntries {
            s.cacheStart.append(Int32(s.cacheIDs.count))
            s.cacheCount.append(Int32(out.count - before))
            s.cacheIDs.append(contentsOf: out[before...])
            s.cache.insert(UnsafeBufferPointer(start: p + start, count: n), value: Int32(s.cacheStart.count - 1))
        }
    }

    private func encodeSegment(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [Int32], scratch s: inout SentencePieceScratch) {
        s.start.removeAll(keepingCapacity: true)
        s.len.removeAll(keepingCapacity: true)
        s.prev.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        s.freeze.removeAll(keepingCapacity: true)
        s.heap.removeAll()
        s.revMerge.removeAll()
        var i = start
        while i < end {
            let n: Int
            let frozen: Bool
            if let (_, e) = userDefined.longestMatch(p, i, end) {
                n = e - i
                frozen = true
            } else {
                n = min(utf8Length(lead: p[i]), end - i)
                frozen = false
            }
            let k = s.start.count
            s.start.append(Int32(i))
            s.len.append(Int32(n))
            s.prev.append(Int32(k - 1))
            s.next.append(i + n < end ? Int32(k + 1) : -1)
            s.freeze.append(frozen)
            i += n
        }
        let count = s.start.count
        let maxLen = mergeable.maxKeyLength
        func maybeAdd(_ left: Int, _ right: Int, _ s: inout SentencePieceScratch) {
            if left < 0 || right < 0 || s.freeze[left] || s.freeze[right] { return }
            let size = Int(s.len[left] + s.len[right])
            if size > maxLen { return }
            let at = p + Int(s.start[left])
            let id = mergeable.find(at, size)
            if id < 0 { return }
            s.heap.push(scoreKey(scores[Int(id)]) | UInt64(left), UInt64(right) << 32 | UInt64(size))
            if types[Int(id)] == .unused {
                s.revMerge[Array(UnsafeBufferPointer(start: at, count: size))] = Int(s.len[left])
            }
        }
        if count > 1 { for k in 1..<count { maybeAdd(k - 1, k, &s) } }
        while let top = s.heap.pop() {
            let left = Int(top.key & 0xFFFF_FFFF)
            let right = Int(top.payload >> 32)
            let size = Int32(truncatingIfNeeded: top.payload & 0xFFFF_FFFF)
            if s.len[left] == 0 || s.len[right] == 0 || s.len[left] + s.len[right] != size { continue }
            s.len[left] = size
            let after = Int(s.next[right])
            s.next[left] = Int32(after)
            if after >= 0 { s.prev[after] = Int32(left) }
            s.len[right] = 0
            maybeAdd(Int(s.prev[left]), left, &s)
            maybeAdd(left, after, &s)
        }
        var k = 0
        while k >= 0 && k < count {
            resegment(p, Int(s.start[k]), Int(s.len[k]), into: &out, scratch: s)
            k = Int(s.next[k])
        }
    }

    private func resegment(_ p: UnsafePointer<UInt8>, _ at: Int, _ n: Int, into out: inout [Int32], scratch s: SentencePieceScratch) {
        let id = pieceToID(p + at, n)
        if types[Int(id)] == .unused, let leftLen = s.revMerge[Array(UnsafeBufferPointer(start: p + at, count: n))],
           leftLen > 0, leftLen < n {
            resegment(p, at, leftLen, into: &out, scratch: s)
            resegment(p, at + leftLen, n - leftLen, into: &out, scratch: s)
            return
        }
        if types[Int(id)] == .unknown && byteFallback {
            for b in 0..<n { out.append(byteIDs[Int(p[at + b])]) }
        } else {
            out.append(id)
        }
    }

    // MARK: Decoding

    /// `SentencePieceProcessor::Decode`. Ids outside the vocabulary are skipped (the library
    /// would fail); with `skipSpecialTokens`, control and unknown pieces are skipped too.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var text = [UInt8]()
        var pendingBytes = [UInt8]()
        var isBosWS = true
        var bosWSSeen = false
        let dropsLeadingSpace = normalizer.addDummyPrefix || normalizer.removeExtraWhitespaces
        for id in ids {
            guard id >= 0, id < pieces.count else { continue }
            let type = types[id]
            if skipSpecialTokens && (type == .control || type == .unknown) { continue }
            if type == .byte {
                if let b = byteFallbackValue(pieceStrings[id]) { pendingBytes.append(b) }
                continue
            }
            if !pendingBytes.isEmpty {
                appendUTF8LossyPerByte(pendingBytes, to: &text)
                pendingBytes.removeAll()
            }
            if bosWSSeen || !text.isEmpty { isBosWS = false }
            switch type {
            case .control:
                bosWSSeen = false
            case .unknown:
                text += unknownSurface
                bosWSSeen = false
            default:
                var piece = pieces[id][...]
                var consumed = false
                if isBosWS && dropsLeadingSpace && piece.starts(with: metaspaceUTF8) {
                    piece = piece.dropFirst(3)
                    consumed = !normalizer.removeExtraWhitespaces
                }
                var k = piece.startIndex
                while k < piece.endIndex {
                    if piece[k] == 0xE2, k + 2 < piece.endIndex, piece[k + 1] == 0x96, piece[k + 2] == 0x81 {
                        text.append(0x20)
                        k += 3
                    } else {
                        text.append(piece[k])
                        k += 1
                    }
                }
                bosWSSeen = consumed
            }
        }
        if !pendingBytes.isEmpty { appendUTF8LossyPerByte(pendingBytes, to: &text) }
        return String(decoding: text, as: UTF8.self)
    }
}
