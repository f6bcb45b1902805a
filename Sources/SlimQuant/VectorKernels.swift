// The vectorised inner loops of SlimQuant: |x|^2.4 and the SQC τ search (spec §4.2), and the
// clamped softmax / KL rows of the SBA search (spec §3.3). They share one file on purpose:
// debug builds compile files separately, and `@inline(__always)` helpers only inline within a
// file — a call per element or per 8 lanes would make these loops several times slower.
//
// The SQC loss is evaluated 101 times per weight, so a libm `pow` per element would dominate a
// SliM-LLM run; the polynomial |x|^2.4 below is within ~3e-7 relative of `pow`.

import Foundation
import SlimKernels

// Swift's generic SIMD conversions (`SIMD8<Int32>(floats)`) and `pointwiseMin/Max` are
// scalarised and ~50× slower than the instructions they stand for, so the SIMD helpers below
// move between integers and floats with the 1.5·2²³ "magic number" and bit casts. The ℓ2.4
// loss is instead written as plain scalar code over a buffer, which LLVM vectorises itself
// (measured 3× faster than the hand-written SIMD8 version, whose masks it lowers poorly).
enum FastMath {
    /// 1.5·2²³: adding it to a Float with |x| < 2²² rounds x to an integer (half to even) held
    /// in the low mantissa bits.
    @inline(__always) static var roundMagic: SIMD8<Float> { SIMD8(repeating: 12_582_912) }

    /// Lane-wise clamp to [lo, hi] (NaN lanes pass through).
    @inline(__always)
    static func clamp(_ x: SIMD8<Float>, _ lo: SIMD8<Float>, _ hi: SIMD8<Float>) -> SIMD8<Float> {
        x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
    }

    /// Lane-wise maximum (NaN in `a` is replaced by `b`).
    @inline(__always)
    static func maximum(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        a.replacing(with: b, where: .!(a .>= b))
    }

    // MARK: - exp (Cephes expf), restricted range

    /// e^x for |x| ≤ 80 (about 1 ulp); lanes outside are clamped to ±80. `@_transparent`
    /// because the optimizer declined `@inline(__always)` here (a call per 8 lanes).
    @_transparent
    static func exp(_ input: SIMD8<Float>) -> SIMD8<Float> {
        let x = clamp(input, SIMD8<Float>(repeating: -80), SIMD8<Float>(repeating: 80))
        let shifted = roundMagic.addingProduct(x, SIMD8<Float>(repeating: 1.442_695_040_888_963_4))
        let n = shifted - roundMagic
        let r = x.addingProduct(n, SIMD8<Float>(repeating: -0.693_359_375))
            .addingProduct(n, SIMD8<Float>(repeating: 2.121_944_40e-4))
        var p = SIMD8<Float>(repeating: 1.987_569_150_0e-4)
        p = p * r + SIMD8<Float>(repeating: 1.398_199_950_7e-3)
        p = p * r + SIMD8<Float>(repeating: 8.333_451_907_3e-3)
        p = p * r + SIMD8<Float>(repeating: 4.166_579_589_4e-2)
        p = p * r + SIMD8<Float>(repeating: 1.666_666_545_9e-1)
        p = p * r + SIMD8<Float>(repeating: 5.000_000_120_1e-1)
        let er = p * (r * r) + r + 1
        // n (|n| ≤ 116) sits in the low bits of `shifted`: 2ⁿ is built directly in the exponent.
        let nBits = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(roundMagic, to: SIMD8<Int32>.self)
        return er * unsafeBitCast((nBits &+ 127) &<< 23, to: SIMD8<Float>.self)
    }

    // MARK: - |x|^2.4 (scalar, vectorised by LLVM in loops)

    /// |x|^2.4 = x²·e^(0.4·ln|x|) with Cephes logf/expf polynomials (within ~3e-7 relative of
    /// `pow`); exact 0 for x = 0 and finite for every finite x (zero/subnormal |x| read the
    /// minimum exponent, harmless after the x² factor). Branch-free so loops vectorise.
    @inline(__always)
    static func pow24(_ v: Float) -> Float {
        let x = Swift.abs(v)
        let bits = x.bitPattern
        // ln x: x = m·2^e, m ∈ [0.5, 1), moved to [√½, √2); the biased exponent becomes a Float
        // exactly through the 2²³ mantissa trick.
        var e = Float(bitPattern: ((bits >> 23) & 0xFF) | 0x4B00_0000) - (8_388_608 + 126)
        var m = Float(bitPattern: (bits & 0x807F_FFFF) | 0x3F00_0000)
        let small = m < 0.707_106_781_186_547_524
        e = small ? e - 1 : e
        m = small ? m + m : m
        let t = m - 1
        let z = t * t
        var p: Float = 7.037_683_629_2e-2
        p = p * t - 1.151_461_031_0e-1
        p = p * t + 1.167_699_874_0e-1
        p = p * t - 1.242_014_084_6e-1
        p = p * t + 1.424_932_278_7e-1
        p = p * t - 1.666_805_766_5e-1
        p = p * t + 2.000_071_476_5e-1
        p = p * t - 2.499_999_399_3e-1
        p = p * t + 3.333_333_117_4e-1
        var y = p * t * z
        y += e * -2.121_944_40e-4
        y -= 0.5 * z
        let ln = t + y + e * 0.693_359_375
        // e^a with a = 0.4·ln x ∈ [−36, 36]: 2ⁿ·e^r, n = round(a/ln 2) via the magic number.
        let a = Swift.min(Swift.max(0.4 * ln, -80), 80)
        let shifted = 12_582_912 + a * 1.442_695_040_888_963_4
        let n = shifted - 12_582_912
        let r = a - n * 0.693_359_375 - n * -2.121_944_40e-4
        var q: Float = 1.987_569_150_0e-4
        q = q * r + 1.398_199_950_7e-3
        q = q * r + 8.333_451_907_3e-3
        q = q * r + 4.166_579_589_4e-2
        q = q * r + 1.666_666_545_9e-1
        q = q * r + 5.000_000_120_1e-1
        let er = q * (r * r) + r + 1
        let nBits = Int32(bitPattern: shifted.bitPattern) &- Int32(bitPattern: Float(12_582_912).bitPattern)
        return x * x * er * Float(bitPattern: UInt32(bitPattern: (nBits &+ 127) &<< 23))
    }
}

// MARK: - SQC τ search loop

enum SQCSearch {
    /// The τ loop of `QuantPrimitives.sqcFit` (see there); `fixedZero` is the symmetric zero
    /// point, or nil for the per-τ asymmetric one. Lives next to `FastMath.pow24` so that the
    /// loss inlines (no cross-file inlining in non-WMO builds).
    static func best(_ w: UnsafePointer<Float>, count: Int, maxq: Float, xmin: Float, xmax: Float, fixedZero: Float?,
                     start: RowParameters, elementWeights: UnsafePointer<Float>?) -> (RowParameters, tauIndex: Int) {
        guard count > 0 else { return (start, 0) }
        var best = Float.infinity
        var chosen = start
        var chosenIndex = 0
        let padded = (count + 7) & ~7
        return withUnsafeTemporaryAllocation(of: Float.self, capacity: padded) { buffer -> (RowParameters, Int) in
            let loss = buffer.baseAddress!
            // Padding lanes stay 0 and add nothing to the sums.
            loss.initialize(repeating: 0, count: padded)
            let raw = UnsafeRawPointer(loss)
            for (index, tau) in QuantPrimitives.tauGrid.enumerated() {
                let xmin1 = tau * xmin
                let xmax1 = tau * xmax
                let scale = (xmax1 - xmin1) / maxq
                let zero = fixedZero ?? (-xmin1 / scale).rounded(.toNearestOrEven)
                // The same operations as `QuantPrimitives.code`/`dequantize`, per element.
                if let elementWeights {
                    for j in 0..<count {
                        let q = Swift.min(Swift.max((w[j] / scale).rounded(.toNearestOrEven) + zero, 0), maxq)
                        loss[j] = FastMath.pow24(scale * (q - zero) - w[j]) * elementWeights[j]
                    }
                } else {
                    for j in 0..<count {
                        let q = Swift.min(Swift.max((w[j] / scale).rounded(.toNearestOrEven) + zero, 0), maxq)
                        loss[j] = FastMath.pow24(scale * (q - zero) - w[j])
                    }
                }
                var acc = SIMD8<Float>()
                var j = 0
                while j < padded {
                    acc += raw.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self)
                    j &+= 8
                }
                let err = acc.sum()
                if err < best {
                    best = err
                    chosen = RowParameters(scale: scale, zero: zero)
                    chosenIndex = index
                }
            }
            return (chosen, chosenIndex)
        }
    }
}

// MARK: - Softmax and KL

/// Row-wise clamped log-softmax and KL sums over R output features, vectorised in three
/// passes per row (max, exponentials with their sum, KL terms).
enum SoftmaxKL {
    /// The clamp floor of P and Q (float32 1e-6) and its log.
    static let floor: Float = 1e-6
    static let lnFloor = Float(Foundation.log(Double(Float(1e-6))))

    /// Row statistics of logits (plus optional bias): writes e^(x − max) to `e` and returns
    /// c = max + ln Σ e^(x − max), so that ln softmax = x − c and softmax = e / Σe.
    @inline(__always)
    static func logNormalizer(_ x: UnsafePointer<Float>, bias: UnsafePointer<Float>?, count: Int,
                              e: UnsafeMutablePointer<Float>) -> (c: Float, inverseSum: Float) {
        let xr = UnsafeRawPointer(x), br = bias.map { UnsafeRawPointer($0) }
        let er = UnsafeMutableRawPointer(e)
        let vectorEnd = count & ~7
        @inline(__always) func load(_ j: Int) -> SIMD8<Float> {
            let v = xr.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self)
            guard let br else { return v }
            return v + br.loadUnaligned(fromByteOffset: j &* 4, as: SIMD8<Float>.self)
        }
        @inline(__always) func scalar(_ j: Int) -> Float { x[j] + (bias?[j] ?? 0) }
        var maxV = SIMD8<Float>(repeating: -.infinity)
        var j = 0
        while j < vectorEnd { maxV = FastMath.maximum(maxV, load(j)); j &+= 8 }
        var m = Swift.max(Swift.max(Swift.max(maxV[0], maxV[1]), Swift.max(maxV[2], maxV[3])),
                          Swift.max(Swift.max(maxV[4], maxV[5]), Swift.max(maxV[6], maxV[7])))
        for t in vectorEnd..<count where scalar(t) > m { m = scalar(t) }
        let mV = SIMD8<Float>(repeating: m)
        var sumV = SIMD8<Float>()
        j = 0
        while j < vectorEnd {
            // Shifted logits are ≤ 0; FastMath.exp clamps below −80 (e^−80 is far below the
            // 1e-6 floor applied to P, and ln P is formed from the logits, not from e).
            let v = FastMath.exp(load(j) - mV)
            er.storeBytes(of: v, toByteOffset: j &* 4, as: SIMD8<Float>.self)
            sumV += v
            j &+= 8
        }
        var sum = Double(sumV.sum())
        for t in vectorEnd..<count {
            e[t] = Float(Foundation.exp(Double(scalar(t) - m)))
            sum += Double(e[t])
        }
        return (m + Float(Foundation.log(sum)), Float(1 / sum))
    }

    /// max(log_softmax(row), ln 1e-6) for every row (tokens × width, compact output).
    static func clampedLogSoftmax(_ y: UnsafePointer<Float>, tokens: Int, width: Int, ld: Int, threads: Int) -> [Float] {
        var out = [Float](repeating: 0, count: tokens * width)
        out.withUnsafeMutableBufferPointer { ob in
            let op = ob.baseAddress!
            parallelChunks(count: tokens, threads: threads, grain: 32) { range in
                var e = [Float](repeating: 0, count: width)
                e.withUnsafeMutableBufferPointer { eb in
                    for t in range {
                        let row = y + t * ld, dst = op + t * width
                        let (c, _) = logNormalizer(row, bias: nil, count: width, e: eb.baseAddress!)
                        for j in 0..<width { dst[j] = max(row[j] - c, lnFloor) }
                    }
                }
            }
        }
        return out
    }

    /// Σ_t Σ_o P·(ln P − ln Q) with P = max(softmax(o (+ bias)), 1e-6) and ln Q given (clamped).
    /// Each row is reduced in Float lanes, rows in Double in token order, so the sum is
    /// independent of `threads`.
    static func klSum(_ o: UnsafePointer<Float>, tokens: Int, width: Int, bias: [Float]?, lnQ: [Float],
                      threads: Int) -> Double {
        var perRow = [Double](repeating: 0, count: tokens)
        let biasValues = bias ?? []
        perRow.withUnsafeMutableBufferPointer { pr in
            lnQ.withUnsafeBufferPointer { qb in
                biasValues.withUnsafeBufferPointer { bb in
                    let prp = pr.baseAddress!, qp = qb.baseAddress!
                    let bp = bias == nil ? nil : bb.baseAddress
                    parallelChunks(count: tokens, threads: threads, grain: 32) { range in
                        var e = [Float](repeating: 0, count: width)
                        e.withUnsafeMutableBufferPointer { eb in
                            let ep = eb.baseAddress!
                            let eraw = UnsafeRawPointer(ep), braw = bp.map { UnsafeRawPointer($0) }
                            let vectorEnd = width & ~7
                            let floorV = SIMD8<Float>(repeating: floor), lnFloorV = SIMD8<Float>(repeating: lnFloor)
                            for t in range {
                                let row = o + t * width, q = qp + t * width
                                let (c, inverse) = logNormalizer(row, bias: bp, count: width, e: ep)
                                let rraw = UnsafeRawPointer(row), qraw = UnsafeRawPointer(q)
                                let inverseV = SIMD8<Float>(repeating: inverse), cV = SIMD8<Float>(repeating: c)
                                var acc = SIMD8<Float>()
                                var j = 0
                                while j < vectorEnd {
                                    let offset = j &* 4
                                    var logit = rraw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self)
                                    if let braw { logit += braw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) }
                                    let p = FastMath.maximum(eraw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self) * inverseV, floorV)
                                    let lnP = FastMath.maximum(logit - cV, lnFloorV)
                                    acc += p * (lnP - qraw.loadUnaligned(fromByteOffset: offset, as: SIMD8<Float>.self))
                                    j &+= 8
                                }
                                var total = Double(acc.sum())
                                for k in vectorEnd..<width {
                                    let p = max(ep[k] * inverse, floor)
                                    let lnP = max(row[k] + (bp?[k] ?? 0) - c, lnFloor)
                                    total += Double(p * (lnP - q[k]))
                                }
                                prp[t] = total
                            }
                        }
                    }
                }
            }
        }
        return perRow.reduce(0, +)
    }
}
