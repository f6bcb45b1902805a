// Hash tables tuned for tokenization hot loops.
//
// Why not `Dictionary<String, Int>`: every lookup of a word or candidate merge would first
// have to build a `String` (allocation + UTF-8 validation) and hash it with SipHash. These
// tables take a pointer and a length into a byte buffer the caller already has, keep all keys
// in one contiguous arena, and hash eight bytes at a time.

// MARK: - Hashing

@inline(__always)
func mixHash(_ x: UInt64) -> UInt64 {
    // The 64-bit finaliser of MurmurHash3: cheap and avalanches every input bit.
    var h = x
    h ^= h >> 33
    h &*= 0xff51_afd7_ed55_8ccd
    h ^= h >> 33
    h &*= 0xc4ce_b9fe_1a85_ec53
    h ^= h >> 33
    return h
}

/// Hash of `count` bytes at `p` (any alignment).
@inline(__always)
func hashBytes(_ p: UnsafePointer<UInt8>, _ count: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(truncatingIfNeeded: count)
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 8 <= count {
        let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = mixHash(h ^ w) &+ 0x2545_F491_4F6C_DD1D
        i += 8
    }
    if i < count {
        var w: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            w |= UInt64(p[i]) << shift
            shift += 8
            i += 1
        }
        h = mixHash(h ^ w)
    }
    return h
}

// MARK: - Byte-string map

/// A map from byte strings to `Int32` values with open addressing.
///
/// Keys are copied into one arena. Inserting an existing key replaces its value (last one
/// wins, like building a Rust `HashMap` from an iterator). Lookups take a raw pointer and a
/// length so callers can probe sub-ranges of a larger buffer without copying.
struct ByteStringMap {
    private var arena: [UInt8] = []
    private var keyStart: [Int] = []
    private var keyLength: [Int32] = []
    private(set) var values: [Int32] = []
    /// -1 for an empty slot, else an entry index.
    private var slots: [Int32]
    private var mask: Int
    /// Length of the longest key, to reject longer probes without hashing.
    private(set) var maxKeyLength = 0

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
    }

    var count: Int { values.count }

    /// Inserts or replaces; returns the previous value if the key was present.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, value: Int32) -> Int32? {
        let base = key.baseAddress ?? emptyKeyPointer
        if let e = entry(base, key.count) {
            let old = values[e]
            values[e] = value
            return old
        }
        if (values.count + 1) * 2 > slots.count { grow() }
        let e = values.count
        keyStart.append(arena.count)
        keyLength.append(Int32(key.count))
        arena.append(contentsOf: key)
        values.append(value)
        maxKeyLength = max(maxKeyLength, key.count)
        place(entry: e, hash: hashBytes(base, key.count))
        return nil
    }

    @discardableResult
    mutating func insert(_ key: [UInt8], value: Int32) -> Int32? {
        key.withUnsafeBufferPointer { insert($0, value: value) }
    }

    @discardableResult
    mutating func insert(_ key: String, value: Int32) -> Int32? {
        var k = key
        return k.withUTF8 { insert($0, value: value) }
    }

    /// The value for the `count` bytes at `p`, or -1.
    @inline(__always)
    func find(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int32 {
        if count > maxKeyLength { return -1 }
        guard let e = entry(p, count) else { return -1 }
        return values[e]
    }

    func find(_ key: String) -> Int32 {
        var k = key
        return k.withUTF8 { buf in
            guard let base = buf.baseAddress else { return find(emptyKeyPointer, 0) }
            return find(base, buf.count)
        }
    }

    func find(_ key: [UInt8]) -> Int32 {
        key.withUnsafeBufferPointer { buf in
            guard let base = buf.baseAddress else { return find(emptyKeyPointer, 0) }
            return find(base, buf.count)
        }
    }

    /// Key bytes of entry `e` (entries are numbered in insertion order).
    func key(at e: Int) -> ArraySlice<UInt8> {
        arena[keyStart[e]..<(keyStart[e] + Int(keyLength[e]))]
    }

    // MARK: Internals

    private func entry(_ p: UnsafePointer<UInt8>, _ count: Int) -> Int? {
        let h = hashBytes(p, count)
        var s = Int(truncatingIfNeeded: h) & mask
        return slots.withUnsafeBufferPointer { sl in
            arena.withUnsafeBufferPointer { ar in
                keyLength.withUnsafeBufferPointer { kl in
                    keyStart.withUnsafeBufferPointer { ks in
                        while true {
                            let e = Int(sl[s])
                            if e < 0 { return nil }
                            if Int(kl[e]) == count {
                                let start = ks[e]
                                if count == 0 || memcmpEqual(ar.baseAddress! + start, p, count) { return e }
                            }
                            s = (s + 1) & mask
                        }
                    }
                }
            }
        }
    }

    private mutating func place(entry e: Int, hash: UInt64) {
        var s = Int(truncatingIfNeeded: hash) & mask
        while slots[s] >= 0 { s = (s + 1) & mask }
        slots[s] = Int32(e)
    }

    private mutating func grow() {
        let size = slots.count * 2
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        for e in 0..<values.count {
            let h = arena.withUnsafeBufferPointer { ar in
                count(for: e) == 0 ? hashBytes(emptyKeyPointer, 0) : hashBytes(ar.baseAddress! + keyStart[e], count(for: e))
            }
            place(entry: e, hash: h)
        }
    }

    private func count(for e: Int) -> Int { Int(keyLength[e]) }
}

/// A valid pointer for zero-length keys: never read (zero bytes are hashed/compared) and
/// never freed, so sharing it between threads is safe.
nonisolated(unsafe) let emptyKeyPointer = UnsafePointer(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))

@inline(__always)
func memcmpEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    var i = 0
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    while i + 8 <= n {
        if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
            return false
        }
        i += 8
    }
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}

// MARK: - Integer-key map

/// A map from `UInt64` keys to `UInt64` values with open addressing (used for merge pairs:
/// key = left id << 32 | right id). Inserting an existing key replaces its value.
struct UInt64Map {
    private var keys: [UInt64]
    private var vals: [UInt64]
    private var used: [Bool]
    private var mask: Int
    private(set) var count = 0

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: 0, count: size)
        vals = [UInt64](repeating: 0, count: size)
        used = [Bool](repeating: false, count: size)
        mask = size - 1
    }

    mutating func insert(_ key: UInt64, _ value: UInt64) {
        if (count + 1) * 2 > keys.count { grow() }
        var s = Int(truncatingIfNeeded: mixHash(key)) & mask
        while used[s] {
            if keys[s] == key { vals[s] = value; return }
            s = (s + 1) & mask
        }
        used[s] = true
        keys[s] = key
        vals[s] = value
        count += 1
    }

    /// The value for `key`, or nil.
    @inline(__always)
    func find(_ key: UInt64) -> UInt64? {
        var s = Int(truncatingIfNeeded: mixHash(key)) & mask
        return used.withUnsafeBufferPointer { u in
            keys.withUnsafeBufferPointer { k in
                while u[s] {
                    if k[s] == key { return vals[s] }
                    s = (s + 1) & mask
                }
                return nil
            }
        }
    }

    private mutating func grow() {
        let oldKeys = keys, oldVals = vals, oldUsed = used
        let size = keys.count * 2
        keys = [UInt64](repeating: 0, count: size)
        vals = [UInt64](repeating: 0, count: size)
        used = [Bool](repeating: false, count: size)
        mask = size - 1
        count = 0
        for i in 0..<oldKeys.count where oldUsed[i] { insert(oldKeys[i], oldVals[i]) }
    }
}

// MARK: - Min-heap

/// A binary min-heap of (key, payload) pairs ordered by `key` alone. Both BPE algorithms
/// encode their priority (rank or score, then position) into `key`.
struct PairHeap {
    private(set) var keys: [UInt64] = []
    private var payloads: [UInt64] = []

    var isEmpty: Bool { keys.isEmpty }

    mutating func removeAll() {
        keys.removeAll(keepingCapacity: true)
        payloads.removeAll(keepingCapacity: true)
    }

    mutating func push(_ key: UInt64, _ payload: UInt64) {
        keys.append(key)
        payloads.append(payload)
        var i = keys.count - 1
        keys.withUnsafeMutableBufferPointer { k in
            payloads.withUnsafeMutableBufferPointer { p in
                while i > 0 {
                    let parent = (i - 1) >> 1
                    if k[parent] <= k[i] { break }
                    k.swapAt(parent, i)
                    p.swapAt(parent, i)
                    i = parent
                }
            }
        }
    }

    /// Removes and returns the smallest entry (nil when empty).
    mutating func pop() -> (key: UInt64, payload: UInt64)? {
        guard let topKey = keys.first, let topPayload = payloads.first else { return nil }
        let lastKey = keys.removeLast()
        let lastPayload = payloads.removeLast()
        let n = keys.count
        if n > 0 {
            keys.withUnsafeMutableBufferPointer { k in
                payloads.withUnsafeMutableBufferPointer { p in
                    var i = 0
                    while true {
                        let l = 2 * i + 1
                        if l >= n { break }
                        let r = l + 1
                        let c = (r < n && k[r] < k[l]) ? r : l
                        if lastKey <= k[c] { break }
                        k[i] = k[c]
                        p[i] = p[c]
                        i = c
                    }
                    k[i] = lastKey
                    p[i] = lastPayload
                }
            }
        }
        return (topKey, topPayload)
    }
}
