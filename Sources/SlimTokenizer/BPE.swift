import SlimIO

// The BPE model of tokenizer.json, reproducing HF `tokenizers` (models/bpe): a word starts
// as one symbol per character (unknown characters → byte-fallback tokens or the unk token),
// then the adjacent pair with the lowest merge rank is merged, leftmost first, until no pair
// has a merge.

/// Merge ranks and results packed into one word: rank << 32 | new id.
@inline(__always) private func packMerge(rank: Int, newID: Int32) -> UInt64 {
    UInt64(UInt32(truncatingIfNeeded: rank)) << 32 | UInt64(UInt32(bitPattern: newID))
}

@inline(__always) private func pairKey(_ a: Int32, _ b: Int32) -> UInt64 {
    UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
}

/// Largest id accepted in a vocabulary (keeps id-indexed tables bounded on hostile files).
let maxVocabularyID = 1 << 24

/// UTF-8 of U+2581, the SentencePiece space marker.
let metaspaceUTF8: [UInt8] = [0xE2, 0x96, 0x81]

final class BPEModel: @unchecked Sendable {
    let vocab: ByteStringMap
    /// Token string per id (nil for ids the vocabulary skips).
    let idToToken: [String?]
    private let merges: UInt64Map
    private let unkID: Int32
    private let byteFallback: Bool
    /// `<0xXX>` token id per byte, or -1.
    private let byteIDs: [Int32]
    private let fuseUnk: Bool
    private let ignoreMerges: Bool
    private let subwordPrefix: [UInt8]
    private let wordSuffix: [UInt8]
    /// True when the word may be cut before each run of "▁" without changing the result:
    /// no vocabulary token contains "▁" preceded by another character, so no merge can
    /// cross such a cut (used for SentencePiece-style files whose whole text is one word).
    private let cutBeforeMetaspace: Bool

    let hasMerges: Bool

    /// True for the `<0xXX>` byte-fallback tokens and the unknown token.
    func isByteOrUnknown(_ id: Int32) -> Bool { id == unkID || byteIDs.contains(id) }

    init(json model: JSON, path: String) throws(FileError) {
        guard let object = model["vocab"]?.object else { throw FileError(path, "BPE model has no \"vocab\" object") }
        let entries = object.pairs
        var vocab = ByteStringMap(capacity: entries.count)
        var maxID = -1
        for (token, value) in entries {
            guard let id = value.int, id >= 0, id <= maxVocabularyID else {
                throw FileError(path, "vocab entry \(JSON.string(token).serialized()) has an invalid id")
            }
            if vocab.insert(token, value: Int32(id)) != nil {
                throw FileError(path, "vocab has the token \(JSON.string(token).serialized()) twice")
            }
            maxID = max(maxID, id)
        }
        var idToToken = [String?](repeating: nil, count: maxID + 1)
        for (token, value) in entries { if let id = value.int { idToToken[id] = token } }

        if let dropout = model["dropout"]?.double, dropout > 0 {
            throw FileError(path, "BPE dropout \(dropout) is not supported (it makes tokenization random)")
        }
        let prefix = Array((model["continuing_subword_prefix"]?.string ?? "").utf8)
        let suffix = Array((model["end_of_word_suffix"]?.string ?? "").utf8)

        // A missing "merges" is an empty list, as in HF; JSONPipeline then checks that the
        // vocabulary does not need merges.
        let mergeList = model["merges"]?.array ?? []
        if let m = model["merges"], !m.isNull, m.array == nil { throw FileError(path, "BPE \"merges\" is not an array") }
        var merges = UInt64Map(capacity: mergeList.count)
        for (rank, item) in mergeList.enumerated() {
            let a: String, b: String
            if let s = item.string {
                let parts = s.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else {
                    throw FileError(path, "merge #\(rank + 1) \(JSON.string(s).serialized()) is not two tokens separated by one space")
                }
                a = String(parts[0]); b = String(parts[1])
            } else if let pair = item.array, pair.count == 2, let x = pair[0].string, let y = pair[1].string {
                a = x; b = y
            } else {
                throw FileError(path, "merge #\(rank + 1) is neither \"a b\" nor [\"a\", \"b\"]")
            }
            let ia = vocab.find(a), ib = vocab.find(b)
            guard ia >= 0 else { throw FileError(path, "merge #\(rank + 1) refers to unknown token \(JSON.string(a).serialized())") }
            guard ib >= 0 else { throw FileError(path, "merge #\(rank + 1) refers to unknown token \(JSON.string(b).serialized())") }
            var bBytes = Array(b.utf8)
            if !prefix.isEmpty, bBytes.starts(with: prefix) { bBytes.removeFirst(prefix.count) }
            let merged = Array(a.utf8) + bBytes
            let id = vocab.find(merged)
            guard id >= 0 else {
                throw FileError(path, "merge #\(rank + 1) produces \(JSON.string(String(decoding: merged, as: UTF8.self)).serialized()), which is not in the vocabulary")
            }
            merges.insert(pairKey(ia, ib), packMerge(rank: rank, newID: id))
        }

        byteFallback = model["byte_fallback"]?.bool ?? false
        var byteIDs = [Int32](repeating: -1, count: 256)
        for b in 0..<256 {
            byteIDs[b] = vocab.find(Array("<0x\(String(b, radix: 16, uppercase: true).leftPadded(2))>".utf8))
        }
        hasMerges = !mergeList.isEmpty
        if let unk = model["unk_token"]?.string {
            let id = vocab.find(unk)
            guard id >= 0 else { throw FileError(path, "unk_token \(JSON.string(unk).serialized()) is not in the vocabulary") }
            unkID = id
        } else {
            unkID = -1
        }
        fuseUnk = model["fuse_unk"]?.bool ?? false
        ignoreMerges = model["ignore_merges"]?.bool ?? false

        var crossing = false
        for e in 0..<vocab.count {
            let k = Array(vocab.key(at: e))
            var i = 3
            while i + 3 <= k.count {
                if k[i] == 0xE2, k[i + 1] == 0x96, k[i + 2] == 0x81, !(k[i - 3] == 0xE2 && k[i - 2] == 0x96 && k[i - 1] == 0x81) {
                    crossing = true
                    break
                }
                i += 1
            }
            if crossing { break }
        }
        cutBeforeMetaspace = !crossing && prefix.isEmpty && suffix.isEmpty && vocab.find(metaspaceUTF8) >= 0

        self.vocab = vocab
        self.idToToken = idToToken
        self.merges = merges
        self.byteIDs = byteIDs
        self.subwordPrefix = prefix
        self.wordSuffix = suffix
    }

    // MARK: Tokenization

    /// Appends the ids of the word `p[start..<end]`.
    func tokenize(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [Int32], scratch: inout BPEScratch) {
        guard end > start else { return }
        if ignoreMerges {
            let id = vocab.find(p + start, end - start)
            if id >= 0 { out.append(id); return }
        }
        guard cutBeforeMetaspace else {
            tokenizeCached(p, start, end, into: &out, scratch: &scratch)
            return
        }
        var s = start
        var i = start + 1
        while i + 3 <= end {
            if p[i] == 0xE2, p[i + 1] == 0x96, p[i + 2] == 0x81,
               !(i - 3 >= start && p[i - 3] == 0xE2 && p[i - 2] == 0x96 && p[i - 1] == 0x81) {
                // 0xE2 is always a lead byte, so this is a character boundary.
                tokenizeCached(p, s, i, into: &out, scratch: &scratch)
                s = i
                i += 3
            } else {
                i += 1
            }
        }
        tokenizeCached(p, s, end, into: &out, scratch: &scratch)
    }

    private func tokenizeCached(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [Int32], scratch: inout BPEScratch) {
        let n = end - start
        guard n > 0 else { return }
        let cacheable = n <= BPEScratch.maxCachedWordBytes
        if cacheable {
            let e = scratch.cache.find(p + start, n)
            if e >= 0 {
                let s = Int(scratch.cacheStart[Int(e)]), c = Int(scratch.cacheCount[Int(e)])
                out.append(contentsOf: scratch.cacheIDs[s..<(s + c)])
                return
            }
        }
        let before = out.count
        mergeWord(p, start, end, into: &out, scratch: &scratch)
        if cacheable && scratch.cache.count < BPEScratch.maxCacheEntries {
            scratch.cacheStart.append(Int32(scratch.cacheIDs.count))
            scratch.cacheCount.append(Int32(out.count - before))
            scratch.cacheIDs.append(contentsOf: out[before...])
            scratch.cache.insert(UnsafeBufferPointer(start: p + start, count: n), value: Int32(scratch.cacheStart.count - 1))
        }
    }

    /// HF `BPE::merge_word` + `Word::merge_all`.
    private func mergeWord(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int, into out: inout [Int32], scratch s: inout BPEScratch) {
        s.c.removeAll(keepingCapacity: true)
        s.len.removeAll(keepingCapacity: true)
        var pendingUnk: (id: Int32, len: Int32)? = nil
        var key = [UInt8]()
        var i = start
        while i < end {
            let n = min(utf8Length(lead: p[i]), end - i)
            let isFirst = i == start, isLast = i + n >= end
            let decorated = (!isFirst && !subwordPrefix.isEmpty) || (isLast && !wordSuffix.isEmpty)
            let id: Int32
            if decorated {
                key.removeAll(keepingCapacity: true)
                if !isFirst { key += subwordPrefix }
                key.append(contentsOf: UnsafeBufferPointer(start: p + i, count: n))
                if isLast { key += wordSuffix }
                id = vocab.find(key)
            } else {
                id = vocab.find(p + i, n)
            }
            if id >= 0 {
                if let u = pendingUnk { s.c.append(u.id); s.len.append(u.len); pendingUnk = nil }
                s.c.append(id)
                s.len.append(Int32(n))
            } else {
                var handled = false
                if byteFallback {
                    let bytes = decorated ? key : Array(UnsafeBufferPointer(start: p + i, count: n))
                    if bytes.allSatisfy({ byteIDs[Int($0)] >= 0 }) {
                        // HF adds the byte tokens without flushing a pending unk first.
                        for b in bytes { s.c.append(byteIDs[Int(b)]); s.len.append(1) }
                        handled = true
                    }
                }
                if !handled && unkID >= 0 {
                    if let u = pendingUnk {
                        if fuseUnk {
                            pendingUnk = (u.id, u.len + Int32(n))
                        } else {
                            s.c.append(u.id); s.len.append(u.len)
                            pendingUnk = (unkID, Int32(n))
                        }
                    } else {
                        pendingUnk = (unkID, Int32(n))
                    }
                }
                // No unk token and no byte fallback: HF silently drops the character.
            }
            i += n
        }
        if let u = pendingUnk { s.c.append(u.id); s.len.append(u.len) }
        mergeAll(c: &s.c, len: &s.len, prev: &s.prev, next: &s.next, heap: &s.heap)
        for k in 0..<s.c.count where s.len[k] != 0 { out.append(s.c[k]) }
    }

    private func mergeAll(c: inout [Int32], len: inout [Int32], prev: inout [Int32], next: inout [Int32], heap: inout PairHeap) {
        let count = c.count
        guard count > 1 else { return }
        prev.removeAll(keepingCapacity: true)
        next.removeAll(keepingCapacity: true)
        for k in 0..<count {
            prev.append(Int32(k - 1))
            next.append(k + 1 < count ? Int32(k + 1) : -1)
        }
        heap.removeAll()
        // Heap key: rank << 32 | position, so the lowest rank, then the leftmost, pops first.
        for k in 0..<(count - 1) {
            if let m = merges.find(pairKey(c[k], c[k + 1])) {
                heap.push((m & 0xFFFF_FFFF_0000_0000) | UInt64(k), m & 0xFFFF_FFFF)
            }
        }
        while let top = heap.pop() {
            let pos = Int(top.key & 0xFFFF_FFFF)
            let newID = Int32(bitPattern: UInt32(truncatingIfNeeded: top.payload))
            if len[pos] == 0 { continue }
            let nextPos = Int(next[pos])
            if nextPos < 0 { continue }
            // Stale entry: HF only checks that the pair here still produces the same token.
            guard let m = merges.find(pairKey(c[pos], c[nextPos])),
                  Int32(bitPattern: UInt32(truncatingIfNeeded: m)) == newID else { continue }
            c[pos] = newID
            len[pos] += len[nextPos]
            next[pos] = next[nextPos]
            len[nextPos] = 0
            let after = Int(next[nextPos])
            if after >= 0 && after < count { prev[after] = Int32(pos) }
            let before = Int(prev[pos])
            if before >= 0, let m2 = merges.find(pairKey(c[before], c[pos])) {
                heap.push((m2 & 0xFFFF_FFFF_0000_0000) | UInt64(before), m2 & 0xFFFF_FFFF)
            }
            if after >= 0 && after < count, let m3 = merges.find(pairKey(c[pos], c[after])) {
                heap.push((m3 & 0xFFFF_FFFF_0000_0000) | UInt64(pos), m3 & 0xFFFF_FFFF)
            }
        }
    }
}

/// Per-call working memory of the BPE model (buffers reused across words, and the word
/// cache). Owned by one `encode` call, so tokenizers stay safe to share between threads.
struct BPEScratch {
    static let maxCachedWordBytes = 256
    static let maxCacheEntries = 1 << 20

    var cache = ByteStringMap(capacity: 1024)
    var cacheStart: [Int32] = []
    var cacheCount: [Int32] = []
    var cacheIDs: [Int32] = []
    var c: [Int32] = []
    var len: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var heap = PairHeap()
}

extension String {
    func leftPadded(_ width: Int, with pad: Character = "0") -> String {
        count >= width ? self : String(repeating: pad, count: width - count) + self
    }
}
