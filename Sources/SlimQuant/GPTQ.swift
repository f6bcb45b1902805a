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
                           halfParameters: Bool = true, ternarySign: Bool = false,
                           threads: Int = Kernels.defaultThreads) -> Output {
        let groups = Shape.groupCount(columns: columns, groupSize: groupSize)
        precondition(bits.count == groups && weight.count == rows * columns, "GPTQ.run: inconsistent shapes")
        precondition(factor.map { $0.columns == columns } ?? true, "GPTQ.run: factor size mismatch")
        if rows == 0 || columns == 0 {
            return Output(scales: [], zeros: [], codes: [], proxyLoss: 0)
        }
        let work = Workspace(rows: rows, columns: columns, groups: groups, groupWidth: min(groupSize, columns))
        defer { work.deallocate() }
        let upper = factor?.upper ?? []
        weight.withUnsafeMutableBufferPointer { wBuffer in
            upper.withUnsafeBufferPointer { uBuffer in
                let w = wBuffer.baseAddress!
                // An empty array may still hand out a non-nil base address: key on the factor.
                let u = factor == nil ? nil : uBuffer.baseAddress
                for g in 0..<groups {
                    let start = g * groupSize, end = min(columns, start + groupSize)
                    quantizeGroup(g, columns: start..<end, w: w, rows: rows, stride: columns, groups: groups,
                                  bits: Int(bits[g]), symmetricZero: g < symmetricZero.count && symmetricZero[g],
                                  fit: fit, u: u, half: halfParameters, ternary: ternarySign, work: work, threads: threads)
                    // Lazy block update of every later column: W[:, e:] += (−Err)·U[s:e, e:].
                    if let u, end < columns {
                        Kernels.sgemmNN(m: rows, n: columns - end, k: end - start, a: work.negativeErrors, lda: end - start,
                                        b: u + start * columns + end, ldb: columns,
                                        c: w + end, ldc: columns, accumulate: true, threads: threads)
                    }
                }
            }
        }
        return Output(scales: Array(UnsafeBufferPointer(start: work.scales, count: rows * groups)),
                      zeros: Array(UnsafeBufferPointer(start: work.zeros, count: rows * groups)),
                      codes: Array(UnsafeBufferPointer(start: work.codes, count: rows * columns)),
                      proxyLoss: UnsafeBufferPointer(start: work.rowLoss, count: rows).reduce(0, +))
    }

    /// Output and scratch buffers of one run (raw allocations: rows work on disjoint parts).
    private struct Workspace: @unchecked Sendable {
        let scales: UnsafeMutablePointer<Float>
        let zeros: UnsafeMutablePointer<Float>
        let codes: UnsafeMutablePointer<UInt8>
        let rowLoss: UnsafeMutablePointer<Double>
        /// −err of the current group, rows × group width.
        let negativeErrors: UnsafeMutablePointer<Float>

        init(rows: Int, columns: Int, groups: Int, groupWidth: Int) {
            scales = .allocate(capacity: rows * groups)
            scales.initialize(repeating: 0, count: rows * groups)
            zeros = .allocate(capacity: rows * groups)
            zeros.initialize(repeating: 0, count: rows * groups)
            codes = .allocate(capacity: rows * columns)
            codes.initialize(repeating: 0, count: rows * columns)
            rowLoss = .allocate(capacity: rows)
            rowLoss.initialize(repeating: 0, count: rows)
            negativeErrors = .allocate(capacity: rows * groupWidth)
            negativeErrors.initialize(repeating: 0, count: rows * groupWidth)
        }

        func deallocate() {
            scales.deallocate()
            zeros.deallocate()
            codes.deallocate()
            rowLoss.deallocate()
            negativeErrors.deallocate()
        }
    }

    /// Fits group g at entry and quantizes its columns with per-column error feedback inside
    /// the group (rows are independent here, so they run in parallel).
    private static func quantizeGroup(_ g: Int, columns range: Range<Int>, w: UnsafeMutablePointer<Float>, rows: Int,
                                      stride: Int, groups: Int, bits b: Int, symmetricZero sym: Bool, fit: GroupFit,
                                      u: UnsafePointer<Float>?, half: Bool, ternary: Bool, work: Workspace, threads: Int) {
        let s = range.lowerBound, n = range.count
        // Salient-element loss weights, only when they can matter (λ ≠ 1).
        var elementWeights: [Float] = []
        if case .sqc(let lambda) = fit, lambda != 1, b >= 2, let u {
            elementWeights = groupLossWeights(w: w, rows: rows, columns: stride, start: s, count: n, u: u, lambda: lambda)
        }
        elementWeights.withUnsafeBufferPointer { ew in
            let weights = ew.isEmpty ? nil : ew.baseAddress
            parallelChunks(count: rows, threads: threads, grain: 16) { chunk in
                for r in chunk {
                    let row = w + r * stride + s
                    let fitted = QuantPrimitives.fitRow(row, count: n, bits: b, fit: fit, symmetricZero: sym,
                                                        elementWeights: weights.map { $0 + r * n })
                    let p = half ? QuantPrimitives.halfPrecision(fitted, bits: b) : fitted
                    work.scales[r * groups + g] = p.scale
                    work.zeros[r * groups + g] = p.zero
                    var rowSum = 0.0
                    for c in 0..<n {
                        let value = row[c]
                        let (code, q) = QuantPrimitives.quantize(value, bits: b, parameters: p, ternary: ternary)
                        work.codes[r * stride + s + c] = code
                        row[c] = q
                        guard let u else {
                            let d = Double(value - q)
                            rowSum += d * d
                            continue
                        }
                        let uRow = u + (s + c) * stride
                        let err = (value - q) / uRow[s + c]
                        rowSum += Double(err) * Double(err)
                        work.negativeErrors[r * n + c] = -err
                        if c + 1 < n {
                            Kernels.axpy(alpha: -err, x: uRow + s + c + 1, y: row + c + 1, count: n - c - 1)
                        }
                    }
                    work.rowLoss[r] += rowSum
                }
            }
        }
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
