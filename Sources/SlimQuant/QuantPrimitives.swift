// Scalar quantizer building blocks (spec §4, §6): asymmetric min-max, the 1-bit binary
// quantizer, the SQC τ grid search with the ℓ2.4 loss, and the salient-element mask.
//
// Arithmetic follows the reference's float32 formulas operation for operation (divisions stay
// divisions, no fused multiply-adds), so parameters match the reference up to its own rounding.

import SlimKernels

// MARK: - Types

/// How the per-(row, group) parameters of a b ≥ 2-bit group are chosen.
public enum GroupFit: Sendable, Equatable {
    /// Asymmetric min-max (spec §6.1): the range [min(w, 0), max(w, 0)] on 2^b − 1 steps.
    case minMax
    /// SQC (spec §4.2): min-max start, then the per-row τ ∈ `QuantPrimitives.tauGrid` that
    /// minimises Σ weight·|ŵ − w|^2.4, weight λ on salient elements (spec §4.3) and 1 elsewhere.
    case sqc(lambda: Float)
}

/// The quantization parameters of one (row, group).
/// - b ≥ 2: `scale` s > 0 and integer-valued `zero` z ∈ [0, 2^b − 1]; ŵ = s·(q − z).
/// - b = 1: `scale` = α = mean|w| and `zero` = μ = mean w over the row's group; ŵ = sign(w − μ)·α + μ.
public struct RowParameters: Sendable, Equatable {
    public var scale: Float
    public var zero: Float
    public init(scale: Float, zero: Float) {
        self.scale = scale
        self.zero = zero
    }
}

public enum QuantPrimitives {
    // MARK: - τ grid

    /// The 101 SQC step multipliers in search order (spec §4.2): 1.0, then
    /// `linspace(1.0, 1.1, 51)[1:]`, then `linspace(1.0, 0.9, 51)[1:]`, in float32 exactly as
    /// `torch.linspace` computes them (see `torchLinspace`). Ties keep the earlier entry.
    public static let tauGrid: [Float] = {
        let up = torchLinspace(start: 1.0, end: Float(1.0 + 0.1), steps: 51)
        let down = torchLinspace(start: 1.0, end: Float(1.0 - 0.1), steps: 51)
        return [1.0] + up.dropFirst() + down.dropFirst()
    }()

    /// float32 `torch.linspace(start, end, steps)`: step = (end − start)/(steps − 1) in Float;
    /// the first half is `start + step·i`, the second half `end − step·(steps − 1 − i)`, which
    /// makes both endpoints exact. `steps == 1` gives `[start]`; `steps <= 0` gives `[]`.
    public static func torchLinspace(start: Float, end: Float, steps: Int) -> [Float] {
        guard steps > 1 else { return steps == 1 ? [start] : [] }
        let step = (end - start) / Float(steps - 1)
        let halfway = steps / 2
        return (0..<steps).map { i in
            i < halfway ? start + step * Float(i) : end - step * Float(steps - 1 - i)
        }
    }

    // MARK: - Min-max (b ≥ 2)

    /// The range [min(w, 0), max(w, 0)] of `count` values. An all-zero range becomes [−1, 1]
    /// (reference); so does a range narrower than 1e-35, whose step would underflow to a zero
    /// or subnormal scale (the reference would then produce Inf/NaN weights).
    public static func minMaxRange(_ w: UnsafePointer<Float>, count: Int) -> (xmin: Float, xmax: Float) {
        var lo: Float = 0, hi: Float = 0
        for j in 0..<count {
            let v = w[j]
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        if !(hi - lo >= 1e-35) { return (-1, 1) }
        return (lo, hi)
    }

    /// Scale and zero point for the range at `bits` ≥ 2: s = (xmax − xmin)/(2^b − 1),
    /// z = round(−xmin/s) (half to even), or z = 2^(b−1) when `symmetricZero` (the reference's
    /// `sym` mode, only reachable through `ReferenceCompat.symLeak`).
    public static func affineParameters(xmin: Float, xmax: Float, bits: Int, symmetricZero: Bool) -> RowParameters {
        let maxq = Float((1 << bits) - 1)
        let scale = (xmax - xmin) / maxq
        let zero = symmetricZero ? (maxq + 1) / 2 : (-xmin / scale).rounded(.toNearestOrEven)
        return RowParameters(scale: scale, zero: zero)
    }

    /// The integer code clamp(round(w/s) + z, 0, maxq) (half to even, clamp after adding z).
    @inline(__always)
    public static func code(_ w: Float, scale: Float, zero: Float, maxq: Float) -> Float {
        let q = (w / scale).rounded(.toNearestOrEven) + zero
        return q < 0 ? 0 : (q > maxq ? maxq : q)
    }

    /// The dequantized value s·(q − z) of a code.
    @inline(__always)
    public static func dequantize(code: Float, scale: Float, zero: Float) -> Float {
        scale * (code - zero)
    }

    // MARK: - Binary (b = 1)

    /// α = mean|w| and μ = mean w over `count` values (spec §4.1; note α is not centred).
    /// `count == 0` gives (0, 0).
    public static func binaryParameters(_ w: UnsafePointer<Float>, count: Int) -> RowParameters {
        guard count > 0 else { return RowParameters(scale: 0, zero: 0) }
        var sum = 0.0, sumAbs = 0.0
        for j in 0..<count {
            sum += Double(w[j])
            sumAbs += Double(Swift.abs(w[j]))
        }
        return RowParameters(scale: Float(sumAbs / Double(count)), zero: Float(sum / Double(count)))
    }

    /// sign(w − μ): ±1, and for w == μ either +1 (clean, binary) or 0 (`ternary`, as
    /// torch.sign; `ReferenceCompat.ternarySign`).
    @inline(__always)
    public static func binarySign(_ w: Float, mean: Float, ternary: Bool = false) -> Float {
        let d = w - mean
        return d > 0 ? 1 : (d < 0 ? -1 : (ternary ? 0 : 1))
    }

    /// The stored code of a 1-bit weight: the two-bit two's complement of sign(w − μ)
    /// (+1 → 1, −1 → 3, 0 → 0), the field the reference's packed format holds (spec §8.3).
    @inline(__always)
    public static func binaryCode(sign: Float) -> UInt8 {
        sign > 0 ? 1 : (sign < 0 ? 3 : 0)
    }

    /// The sign encoded by `binaryCode` (codes other than 1 and 3 mean 0).
    @inline(__always)
    public static func binarySign(code: UInt8) -> Float {
        code == 1 ? 1 : (code == 3 ? -1 : 0)
    }

    // MARK: - Salient-element mask (spec §4.3)

    /// The salience threshold of a group: with μ, σ (unbiased) of the `count` salience values
    /// δ, the outliers are the δ with |δ − μ| > `sigmas`·σ and the threshold is the smallest
    /// outlier; elements with δ ≥ threshold are salient. Returns nil when there is no outlier
    /// (including σ = 0, a single element, or non-finite statistics): then nothing is salient.
    /// (The reference raises on an empty outlier set.)
    public static func salienceThreshold(_ delta: UnsafePointer<Float>, count: Int, sigmas: Double = 2) -> Float? {
        guard count > 1 else { return nil }
        var sum = 0.0
        for i in 0..<count { sum += Double(delta[i]) }
        let mean = sum / Double(count)
        var squares = 0.0
        for i in 0..<count {
            let d = Double(delta[i]) - mean
            squares += d * d
        }
        let std = (squares / Double(count - 1)).squareRoot()
        guard std > 0, std.isFinite else { return nil }
        var threshold: Float? = nil
        for i in 0..<count {
            let v = delta[i]
            if Swift.abs((Double(v) - mean) / std) > sigmas, threshold.map({ v < $0 }) ?? true {
                threshold = v
            }
        }
        return threshold
    }

    // MARK: - SQC τ search (spec §4.2)

    /// The SQC fit of one row of a b ≥ 2-bit group: starting from the min-max parameters of
    /// [xmin, xmax], tries every τ of `tauGrid` in order with s = (τ·xmax − τ·xmin)/maxq and
    /// z = round(−τ·xmin/s) (or the fixed symmetric zero), and keeps the first strict minimum
    /// of Σ weight_j·|s·(clamp(round(w_j/s) + z, 0, maxq) − z) − w_j|^2.4.
    /// - Parameters:
    ///   - elementWeights: per-element loss weights (λ for salient elements, 1 otherwise), or nil
    ///     for all ones.
    /// - Returns: the parameters and the index of the chosen τ. A NaN loss never wins, so
    ///   non-finite input keeps the min-max parameters (index 0).
    public static func sqcFit(_ w: UnsafePointer<Float>, count: Int, bits: Int, xmin: Float, xmax: Float,
                              symmetricZero: Bool, elementWeights: UnsafePointer<Float>?) -> (RowParameters, tauIndex: Int) {
        let start = affineParameters(xmin: xmin, xmax: xmax, bits: bits, symmetricZero: symmetricZero)
        return SQCSearch.best(w, count: count, maxq: Float((1 << bits) - 1), xmin: xmin, xmax: xmax,
                              fixedZero: symmetricZero ? start.zero : nil, start: start, elementWeights: elementWeights)
    }

    // MARK: - One row of a group

    /// The parameters of one row of a group at `bits` (1…8) with the given fit.
    /// - Parameters:
    ///   - elementWeights: SQC loss weights (see `sqcFit`), ignored for `.minMax` and 1-bit.
    public static func fitRow(_ w: UnsafePointer<Float>, count: Int, bits: Int, fit: GroupFit,
                              symmetricZero: Bool = false, elementWeights: UnsafePointer<Float>? = nil) -> RowParameters {
        if bits == 1 { return binaryParameters(w, count: count) }
        let (xmin, xmax) = minMaxRange(w, count: count)
        switch fit {
        case .minMax:
            return affineParameters(xmin: xmin, xmax: xmax, bits: bits, symmetricZero: symmetricZero)
        case .sqc:
            return sqcFit(w, count: count, bits: bits, xmin: xmin, xmax: xmax, symmetricZero: symmetricZero,
                          elementWeights: elementWeights).0
        }
    }

    /// Quantizes one weight with its row parameters: returns the stored code (b ≥ 2: q ∈
    /// [0, 2^b − 1]; b = 1: see `binaryCode`; `ternary` as in `binarySign`) and the
    /// dequantized value.
    @inline(__always)
    public static func quantize(_ w: Float, bits: Int, parameters p: RowParameters,
                                ternary: Bool = false) -> (code: UInt8, value: Float) {
        if bits == 1 {
            let sign = binarySign(w, mean: p.zero, ternary: ternary)
            return (binaryCode(sign: sign), sign * p.scale + p.zero)
        }
        let maxq = Float((1 << bits) - 1)
        let q = code(w, scale: p.scale, zero: p.zero, maxq: maxq)
        // q ∈ [0, maxq] unless w or the parameters are NaN; never trap on that.
        return (q >= 0 && q <= 255 ? UInt8(q) : 0, dequantize(code: q, scale: p.scale, zero: p.zero))
    }

    /// The parameters rounded to fp16 values, the precision the packed format stores: s, α
    /// and μ round to nearest even; a nonzero s that would round to 0 becomes the smallest
    /// fp16 subnormal (2⁻²⁴) and one beyond the fp16 range becomes 65504, so b ≥ 2 scales stay
    /// positive and finite. z is an integer already.
    public static func halfPrecision(_ p: RowParameters, bits: Int) -> RowParameters {
        func half(_ x: Float) -> Float {
            guard x.isFinite else { return x }
            return Kernels.Reference.f16ToF32(Kernels.Reference.f32ToF16(Swift.min(Swift.max(x, -65504), 65504)))
        }
        var scale = half(p.scale)
        if bits >= 2, scale == 0, p.scale > 0 { scale = 0x1p-24 }
        return RowParameters(scale: scale, zero: bits == 1 ? half(p.zero) : p.zero)
    }

    /// Plain RTN of a row segment (min-max fit at `bits`, or binary for 1 bit) written to
    /// `output` (may alias `w`), as the SBA search's candidates are built (spec §6.3).
    public static func rtnRow(_ w: UnsafePointer<Float>, count: Int, bits: Int, output: UnsafeMutablePointer<Float>) {
        let p = fitRow(w, count: count, bits: bits, fit: .minMax)
        for j in 0..<count { output[j] = quantize(w[j], bits: bits, parameters: p).value }
    }
}
