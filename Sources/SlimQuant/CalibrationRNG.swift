// CPython's `random` module (MT19937) for reference-identical calibration windows (spec §1.3,
// Appendix A): `random.seed(int)`, `getrandbits`, `_randbelow`, `randint`.

// MARK: - CPython-compatible Mersenne Twister

/// A bit-exact replica of CPython's `random.Random` for integer seeds.
///
/// `PythonRandom(seed: s)` followed by `randint(a, b)` returns exactly what
/// `random.seed(s); random.randint(a, b)` returns in CPython 3 (verified against CPython in the
/// tests; the values are independent of the CPython 3.x version for these functions).
public struct PythonRandom: Sendable {
    static let n = 624
    static let m = 397

    private var state: [UInt32]
    private var index: Int

    /// `random.seed(seed)` for an integer seed: the key is |seed| split into 32-bit words,
    /// least significant first (`seed == 0` gives the key `[0]`), fed to `init_by_array`.
    public init(seed: Int) {
        var magnitude = UInt64(seed.magnitude)
        var key: [UInt32] = []
        repeat {
            key.append(UInt32(truncatingIfNeeded: magnitude))
            magnitude >>= 32
        } while magnitude != 0
        self.init(key: key)
    }

    /// `init_by_array(key)` for an explicit key (32-bit words, least significant first), as
    /// CPython uses for seeds wider than 64 bits. An empty key is treated as `[0]`.
    public init(key: [UInt32]) {
        let n = PythonRandom.n
        var mt = [UInt32](repeating: 0, count: n)
        // init_genrand(19650218)
        mt[0] = 19_650_218
        for i in 1..<n {
            mt[i] = 1_812_433_253 &* (mt[i - 1] ^ (mt[i - 1] >> 30)) &+ UInt32(i)
        }
        let words = key.isEmpty ? [0] : key
        var i = 1, j = 0
        for _ in 0..<max(n, words.count) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) &* 1_664_525)) &+ words[j] &+ UInt32(truncatingIfNeeded: j)
            i += 1
            j += 1
            if i >= n { mt[0] = mt[n - 1]; i = 1 }
            if j >= words.count { j = 0 }
        }
        for _ in 0..<(n - 1) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) &* 1_566_083_941)) &- UInt32(i)
            i += 1
            if i >= n { mt[0] = mt[n - 1]; i = 1 }
        }
        mt[0] = 0x8000_0000
        state = mt
        index = n
    }

    /// The next tempered 32-bit output (`genrand_uint32`).
    public mutating func nextUInt32() -> UInt32 {
        if index >= PythonRandom.n { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        let n = PythonRandom.n, m = PythonRandom.m
        let upper: UInt32 = 0x8000_0000, lower: UInt32 = 0x7FFF_FFFF
        for k in 0..<n {
            let y = (state[k] & upper) | (state[(k + 1) % n] & lower)
            var value = state[(k + m) % n] ^ (y >> 1)
            if y & 1 != 0 { value ^= 0x9908_B0DF }
            state[k] = value
        }
        index = 0
    }

    /// `getrandbits(k)` for 0 ≤ k ≤ 64: ⌈k/32⌉ outputs, least significant word first; the last
    /// (most significant) word keeps only its top `k mod 32` bits, as CPython does.
    public mutating func getrandbits(_ k: Int) -> UInt64 {
        precondition((0...64).contains(k), "getrandbits: k must be 0…64, got \(k)")
        if k == 0 { return 0 }
        if k <= 32 { return UInt64(nextUInt32() >> UInt32(32 - k)) }
        let low = UInt64(nextUInt32())
        let remaining = k - 32
        let high = UInt64(nextUInt32() >> UInt32(32 - remaining))
        return low | (high << 32)
    }

    /// `_randbelow_with_getrandbits(n)`: uniform in 0..<n by rejection on `bit_length(n)` bits.
    /// Precondition: n ≥ 1.
    public mutating func randbelow(_ n: UInt64) -> UInt64 {
        precondition(n >= 1, "randbelow: n must be ≥ 1")
        let k = 64 - n.leadingZeroBitCount
        var r = getrandbits(k)
        while r >= n { r = getrandbits(k) }
        return r
    }

    /// `randint(a, b)`: uniform in a...b inclusive (`a + randbelow(b − a + 1)`).
    /// Precondition: a ≤ b.
    public mutating func randint(_ a: Int, _ b: Int) -> Int {
        precondition(a <= b, "randint: empty range \(a)...\(b)")
        // b − a + 1 fits in UInt64 for any Int pair with a ≤ b.
        let width = UInt64(bitPattern: Int64(b) &- Int64(a)) &+ 1
        if width == 0 { // a = Int.min, b = Int.max: the full 64-bit range.
            return Int(bitPattern: UInt(getrandbits(64)))
        }
        return a &+ Int(bitPattern: UInt(randbelow(width)))
    }
}

// MARK: - Calibration windows

/// Calibration-window sampling as in the reference datautils (spec §1.3).
public enum CalibrationSampling {
    /// `random.seed(seed)` then `count` times `randint(0, tokenCount − length − 1)`: the start
    /// offsets of the calibration windows `ids[i ..< i + length]` (windows may overlap).
    /// - Throws: `QuantError.invalidArgument` when `count < 0`, `length < 1`, or the corpus is
    ///   too short (`tokenCount < length + 1`; CPython would raise ValueError).
    public static func calibrationOffsets(seed: Int, count: Int, tokenCount: Int, length: Int) throws -> [Int] {
        guard count >= 0 else { throw QuantError.invalidArgument("calibration sample count \(count) < 0") }
        guard length >= 1 else { throw QuantError.invalidArgument("calibration window length \(length) < 1") }
        guard tokenCount > length else {
            throw QuantError.invalidArgument(
                "corpus of \(tokenCount) tokens is too short for \(length)-token calibration windows "
                    + "(need at least \(length + 1))")
        }
        var rng = PythonRandom(seed: seed)
        var offsets: [Int] = []
        offsets.reserveCapacity(count)
        for _ in 0..<count { offsets.append(rng.randint(0, tokenCount - length - 1)) }
        return offsets
    }
}
