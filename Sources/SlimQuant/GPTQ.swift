// The GPTQ column loop with groups fitted at group entry (spec §5).

import SlimKernels

/// GPTQ / RTN over groups of columns.
public enum GPTQ {
    /// What the loop produces besides the in-place fake-quantized weight.
    public struct Output: Sendable {
        /// rows × K parameters (see `QuantizedLinear`).
        public var scales: [Float]
        public var zeros: [Float]
        /// rows × columns codes.
        public var codes: [UInt8]
        /// Σ ((w − q)/U_jj)² (U = I without a factor).
        public var proxyLoss: Double
    }

    /// Quantizes `weight` (rows × columns, row-major) in place, group by group in column order.
    ///
    /// For each group g (columns s..<e): the row parameters are fitted on the current
    /// (error-updated) columns; then for each column c: q = Q(w), err = (w − q)/U_cc, the later
    /// columns of the group get w −= err·U[c, c+1..<e] (per row, so rows run in parallel);
    /// finally all columns ≥ e get W[:, e:] −= Err·U[s:e, e:] (one GEMM). Without a factor
    /// (RTN) no error is propagated.
    /// - Parameters:
    ///   - bits: bits per group (1…8).
    ///   - symmetricZero: per group, use the symmetric zero point (`ReferenceCompat.symLeak`);
    ///     empty for none.
    ///   - fit: min-max or SQC. With SQC and λ ≠ 1, each group's salient elements (spec §4.3,
    ///     δ = w²/U_jj² over the whole group) weigh λ in the loss.
    ///   - factor: the inverse-Hessian factor, or nil for RTN.
    /// - Precondition: shapes are consistent (checked by `LinearQuantizer`).
    public static func run(weight: inout [Float], rows: Int, columns: Int, groupSize: Int, bits: [UInt8],
                           symmetricZero: [Bool] = [], fit: GroupFit, factor: InverseHessianFactor?,
                           threads: Int = Kernels.defaultThreads) -> Output {
        let groups = Shape.groupCount(columns: columns, groupSize: groupSize)
        precondition(bits.count == groups && weight.count == rows * columns, "GPTQ.run: inconsistent shapes")
        precondition(factor.map { $0.columns == columns } ?? true, "GPTQ.run: factor size mismatch")
        if rows == 0 || columns == 0 {
            return Output(scales: [], zeros: [], codes: [], proxyLoss: 0)
        }
        var scales = [Float](repeating: 0, count: rows * groups)
        var zeros = [Float](repeating: 0, count: rows * groups)
        var codes = [UInt8](repeating: 0, count: rows * columns)
        var rowLoss = [Double](repeating: 0, count: rows)
        var negErr = [Float](repeating: 0, count: rows * min(groupSize, columns))
        var elementWeights: [Float] = []
        let u = factor?.upper ?? []

        weight.withUnsafeMutableBufferPointer { wBuffer in
            scales.withUnsafeMutableBufferPointer { scaleBuffer in
            zeros.withUnsafeMutableBufferPointer { zeroBuffer in
            codes.withUnsafeMutableBufferPointer { codeBuffer in
            rowLoss.withUnsafeMutableBufferPointer { lossBuffer in
            negErr.withUnsafeMutableBufferPointer { errBuffer in
            u.withUnsafeBufferPointer { uBuffer in
                let w = wBuffer.baseAddress!
                // An empty array may still hand out a non-nil base address: key on the factor.
                let up = factor == nil ? nil : uBuffer.baseAddress
                let scaleOut = scaleBuffer.baseAddress!, zeroOut = zeroBuffer.baseAddress!
                let codeOut = codeBuffer.baseAddress!, loss = lossBuffer.baseAddress!, errOut = errBuffer.baseAddress!
                for g in 0..<groups {
                    let s = g * groupSize, e = min(columns, s + groupSize), n = e - s
                    let b = Int(bits[g])
                    let sym = g < symmetricZero.count ? symmetricZero[g] : false
                    // Salient-element weights (only when they can matter).
                    var weightsPointer: UnsafePointer<Float>? = nil
                    if case .sqc(let lambda) = fit, lambda != 1, b >= 2, let up {
                        elementWeights = groupLossWeights(w: w, rows: rows, columns: columns, start: s, count: n,
                                                          u: up, lambda: lambda)
                    } else {
                        elementWeights = []
                    }
                    elementWeights.withUnsafeBufferPointer { ew in
                        if !ew.isEmpty { weightsPointer = ew.baseAddress }
                        let weights = weightsPointer
                        parallelChunks(count: rows, threads: threads, grain: 16) { range in
                            for r in range {
                                let row = w + r * columns + s
                                let p = QuantPrimitives.fitRow(row, count: n, bits: b, fit: fit, symmetricZero: sym,
                                                               elementWeights: weights.map { $0 + r * n })
                                scaleOut[r * groups + g] = p.scale
                                zeroOut[r * groups + g] = p.zero
                                var rowSum = 0.0
                                for c in 0..<n {
                                    let value = row[c]
                                    let (code, q) = QuantPrimitives.quantize(value, bits: b, parameters: p)
                                    codeOut[r * columns + s + c] = code
                                    row[c] = q
                                    guard let up else {
                                        let d = Double(value - q)
                                        rowSum += d * d
                                        continue
                                    }
                                    let diag = up[(s + c) * columns + s + c]
                                    let err = (value - q) / diag
                                    rowSum += Double(err) * Double(err)
                                    errOut[r * n + c] = -err
                                    if c + 1 < n {
                                        Kernels.axpy(alpha: -err, x: up + (s + c) * columns + s + c + 1,
                                                     y: row + c + 1, count: n - c - 1)
                                    }
                                }
                                loss[r] += rowSum
                            }
                        }
                    }
                    // Lazy block update of every later column.
                    if let up, e < columns, rows > 0 {
                        Kernels.sgemmNN(m: rows, n: columns - e, k: n, a: errOut, lda: n,
                                        b: up + s * columns + e, ldb: columns,
                                        c: w + e, ldc: columns, accumulate: true, threads: threads)
                    }
                }
            }
            }
            }
            }
            }
            }
        }
        return Output(scales: scales, zeros: zeros, codes: codes, proxyLoss: rowLoss.reduce(0, +))
    }

    /// λ where δ = w²/U_jj² reaches the group's salience threshold (spec §4.3), 1 elsewhere;
    /// empty when the group has no outliers (all weights 1, the mask is irrelevant).
    static func groupLossWeights(w: UnsafePointer<Float>, rows: Int, columns: Int, start: Int, count n: Int,
                                 u: UnsafePointer<Float>, lambda: Float) -> [Float] {
        var delta = [Float](repeating: 0, count: rows * n)
        for r in 0..<rows {
            for c in 0..<n {
                let d = u[(start + c) * columns + start + c]
                let x = w[r * columns + start + c]
                delta[r * n + c] = (x * x) / (d * d)
            }
        }
        guard let threshold = delta.withUnsafeBufferPointer({
            QuantPrimitives.salienceThreshold($0.baseAddress!, count: $0.count)
        }) else { return [] }
        return delta.map { $0 >= threshold ? lambda : 1 }
    }
}
