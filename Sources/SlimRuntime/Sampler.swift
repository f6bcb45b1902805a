import Foundation

/// Picks the next token from logits: greedy (the default) or temperature sampling with
/// optional top-k and top-p (nucleus) filtering, applied in transformers' order
/// (temperature, then top-k, then top-p).
///
/// Sampling is deterministic for a given seed (SplitMix64-seeded xoshiro256**), independent of
/// platform and thread count.
public struct Sampler: Sendable {
    /// 0 means greedy (argmax; the first index on ties, as torch.argmax).
    public let temperature: Float
    /// Keep only the k most likely tokens (nil or 0: no limit).
    public let topK: Int?
    /// Keep the smallest set of most likely tokens whose probability reaches `topP`
    /// (nil or ≥ 1: no limit). At least one token is always kept.
    public let topP: Float?
    private var rng: Xoshiro256

    /// Greedy decoding.
    public static var greedy: Sampler { Sampler(checked: 0, topK: nil, topP: nil, seed: 0) }

    /// - Throws: `RuntimeError` for a negative or non-finite temperature, a negative top-k, or a
    ///   top-p that is not a positive number (values ≥ 1 disable top-p; top-k 0 disables top-k).
    public init(temperature: Float = 0, topK: Int? = nil, topP: Float? = nil, seed: UInt64 = 0) throws(RuntimeError) {
        guard temperature.isFinite, temperature >= 0 else {
            throw RuntimeError("temperature must be a finite number ≥ 0, got \(temperature)")
        }
        if let topK, topK < 0 { throw RuntimeError("top-k must be ≥ 0, got \(topK)") }
        if let topP, !(topP > 0) { throw RuntimeError("top-p must be a positive number, got \(topP)") }
        self.init(checked: temperature, topK: topK, topP: topP, seed: seed)
    }

    private init(checked temperature: Float, topK: Int?, topP: Float?, seed: UInt64) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        rng = Xoshiro256(seed: seed)
    }

    /// The decode loop shared by every backend: samples from the prompt's last logits
    /// (`prefill`), then feeds each token back (`step`) until `maxNewTokens` tokens, a token in
    /// `stopTokens` (included in the result) or `onToken` returning false. The last token is not
    /// fed back.
    public mutating func generate<E: Error>(maxNewTokens: Int, stopTokens: Set<Int> = [],
                                            onToken: (Int) -> Bool = { _ in true },
                                            prefill: () throws(E) -> [Float],
                                            step: (Int) throws(E) -> [Float]) throws(E) -> [Int] {
        guard maxNewTokens > 0 else { return [] }
        var logits = try prefill()
        var out: [Int] = []
        while true {
            let next = sample(logits)
            out.append(next)
            if stopTokens.contains(next) || !onToken(next) || out.count == maxNewTokens { break }
            logits = try step(next)
        }
        return out
    }

    /// The index of the largest logit (first on ties; NaN never wins). -1 for empty input.
    public static func argmax(_ logits: [Float]) -> Int {
        var best = -1
        var bestValue = -Float.infinity
        for (i, x) in logits.enumerated() where x > bestValue || (best < 0 && !x.isNaN) {
            best = i
            bestValue = x
        }
        return best
    }

    /// Samples one token id from `logits` (`[vocab]`).
    /// - Precondition: `logits` is not empty.
    public mutating func sample(_ logits: [Float]) -> Int {
        precondition(!logits.isEmpty, "Sampler: empty logits")
        if temperature == 0 { return max(0, Self.argmax(logits)) }
        // Candidates sorted by logit, highest first (index breaks ties for determinism).
        var order = Array(logits.indices).filter { !logits[$0].isNaN }
        if order.isEmpty { return 0 }
        order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        if let k = topK, k > 0, k < order.count { order.removeSubrange(k...) }
        let top = Double(logits[order[0]]) / Double(temperature)
        var probs = order.map { Foundation.exp(Double(logits[$0]) / Double(temperature) - top) }
        var total = probs.reduce(0, +)
        if let p = topP, p < 1 {
            var cumulative = 0.0
            var keep = 0
            while keep < probs.count {
                cumulative += probs[keep] / total
                keep += 1
                if cumulative >= Double(p) { break }
            }
            probs.removeSubrange(keep...)
            order.removeSubrange(keep...)
            total = probs.reduce(0, +)
        }
        let u = rng.nextUnit() * total
        var acc = 0.0
        for (i, q) in probs.enumerated() {
            acc += q
            if u < acc { return order[i] }
        }
        return order[order.count - 1]
    }
}

/// xoshiro256** (Blackman & Vigna), seeded through SplitMix64.
struct Xoshiro256: Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0
        s.3 ^= s.1
        s.1 ^= s.2
        s.0 ^= s.3
        s.2 ^= t
        s.3 = s.3 << 45 | s.3 >> 19
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    mutating func nextUnit() -> Double {
        Double(next() >> 11) * 0x1p-53
    }
}
