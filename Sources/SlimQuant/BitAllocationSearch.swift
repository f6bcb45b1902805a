// SBA — salience-determined bit allocation search (spec §3.3–§3.6).

import Foundation
import SlimKernels

/// How candidate outputs X·Ŵ_iᵀ are formed.
public enum SBAStrategy: Sendable {
    /// One full GEMM for the first candidate, then O_{i'} = O_i + X[:, g]·ΔŴ_gᵀ for the groups
    /// whose bits change (two per step between consecutive i): ~K/2 times less GEMM work.
    case incremental
    /// A full GEMM per candidate (the definition; kept as the reference for the tests and
    /// benchmarks). Holds every candidate's Ŵ: candidates × R × C Floats.
    case straightforward
}

/// The outcome of a search.
public struct SBAResult: Sendable, Equatable {
    /// i*: the candidate with the smallest KL sum (the smallest i on ties).
    public let best: Int
    /// The candidates evaluated, ascending.
    public let candidates: [Int]
    /// Σ over samples of KL(P_i ‖ Q) per candidate (same order as `candidates`).
    public let klSums: [Double]
    /// Number of samples added.
    public let samples: Int
    /// The search ranking (the ranked group indices by ascending search salience; a short last
    /// group is not ranked unless `ReferenceCompat.rankShortGroup`).
    public let groupOrder: [Int]

    /// klSums / samples (the reference's per-sample mean; same argmin).
    public var meanKL: [Double] { klSums.map { $0 / Double(max(samples, 1)) } }
}

/// Accumulates, over calibration samples, the KL divergence between the softmax (over output
/// features) of each candidate's RTN output and of the full-precision output.
///
/// For candidate i the bits are `Salience.mixedBits(order: groupOrder, count: i, …)` (a short last
/// group that is not ranked stays at N bits) and Ŵ_i is
/// plain RTN per (row, group) of W at those bits (no GPTQ, no SQC; spec §3.3). Per sample X
/// (T×C): P = max(softmax(X·Ŵ_iᵀ (+ bias)), 1e-6), Q = max(softmax(X·Wᵀ + bias), 1e-6), both
/// row-wise over the R outputs, and KL = Σ_t Σ_o P·(ln P − ln Q). Everything is fp32 (the
/// reference searches in the model dtype, fp16; only near-ties can differ).
///
/// The RTN candidates do not depend on the sample, so they are built once at init
/// (incremental: Ŵ of the first candidate plus the changed groups' ΔŴ, about 2 × R × C Floats).
/// Per sample it needs T × R Floats for each of Y, ln Q and the candidate output.
/// Not thread-safe: one instance per module; `add` uses up to `threads` workers itself.
public final class BitAllocationSearch {
    public let rows: Int
    public let columns: Int
    public let groupSize: Int
    /// K = ⌈C / G⌉.
    public let groupCount: Int
    /// F: the groups 0..<F are ranked (`Salience.rankedGroupCount`); K − F is 0 or 1.
    public let rankedGroupCount: Int
    public let targetBits: Int
    public let candidates: [Int]
    public let groupOrder: [Int]
    public let strategy: SBAStrategy
    /// Upper bound on worker threads (results never depend on it).
    public var threads: Int
    public private(set) var klSums: [Double]
    public private(set) var sampleCount = 0

    private let weight: [Float]
    private let bias: [Float]?
    private let biasOnQuantizedSide: Bool
    /// incremental: Ŵ of the first candidate; straightforward: Ŵ of every candidate, stacked.
    private var candidateWeights: [Float]
    /// incremental: per step between consecutive candidates, the (group, ΔŴ_g) pairs.
    private var steps: [[(group: Int, delta: [Float])]] = []

    /// - Parameters:
    ///   - weight: W, rows × columns (row-major), as the search should see it.
    ///   - bias: per-output bias (R values) or nil.
    ///   - groupOrder: the ranked groups by ascending search salience (a permutation of 0..<F,
    ///     F = `Salience.rankedGroupCount(columns:groupSize:compat:)`).
    ///   - candidates: strictly ascending i values with 2i ≤ F (`Salience.searchCandidates`).
    ///   - compat: `.klBiasOnlyInReference` leaves the bias out of the candidate outputs;
    ///     `.rankShortGroup` ranks a short last group too (F = K).
    /// - Throws: `QuantError` for inconsistent shapes, bits outside 2…7, a bad order or
    ///   candidate list, or non-finite weights.
    public init(weight: [Float], rows: Int, columns: Int, bias: [Float]? = nil, groupOrder: [Int],
                targetBits: Int, groupSize: Int, candidates: [Int], compat: ReferenceCompat = [],
                strategy: SBAStrategy = .incremental, threads: Int = Kernels.defaultThreads) throws {
        let count = try Shape.elementCount(rows, columns, "weight")
        guard weight.count == count else {
            throw QuantError.shapeMismatch("weight has \(weight.count) values, expected \(rows)×\(columns)")
        }
        guard groupSize >= 1 else { throw QuantError.invalidOption("group size \(groupSize) < 1") }
        guard (2...7).contains(targetBits) else {
            throw QuantError.invalidOption("SBA target bits must be 2…7, got \(targetBits)")
        }
        if let bias, bias.count != rows {
            throw QuantError.shapeMismatch("bias has \(bias.count) values, expected \(rows)")
        }
        let k = Shape.groupCount(columns: columns, groupSize: groupSize)
        let f = Salience.rankedGroupCount(columns: columns, groupSize: groupSize, compat: compat)
        guard groupOrder.count == f, Set(groupOrder) == Set(0..<f) else {
            throw QuantError.invalidArgument("group order must be a permutation of the \(f) ranked groups 0..<\(f) "
                                             + "(\(k) groups, \(columns) columns, group size \(groupSize))")
        }
        for (index, i) in candidates.enumerated() {
            guard i >= 0, 2 * i <= f, index == 0 || candidates[index - 1] < i else {
                throw QuantError.invalidArgument("SBA candidates must ascend within 0…\(f / 2): \(candidates)")
            }
        }
        if let bad = weight.firstIndex(where: { !$0.isFinite }) {
            throw QuantError.nonFinite("weight[\(bad / max(columns, 1)), \(bad % max(columns, 1))] is \(weight[bad])")
        }
        self.rows = rows
        self.columns = columns
        self.groupSize = groupSize
        self.groupCount = k
        self.rankedGroupCount = f
        self.targetBits = targetBits
        self.candidates = candidates
        self.groupOrder = groupOrder
        self.strategy = strategy
        self.threads = threads
        self.weight = weight
        self.bias = bias
        self.biasOnQuantizedSide = !compat.contains(.klBiasOnlyInReference)
        self.klSums = [Double](repeating: 0, count: candidates.count)
        self.candidateWeights = []
        buildCandidates()
    }

    // MARK: - Candidate weights

    private func columnRange(_ g: Int) -> Range<Int> { (g * groupSize)..<min(columns, (g + 1) * groupSize) }

    /// RTN of group g at `bits`, as a rows × width matrix.
    private func rtnGroup(_ g: Int, bits: Int) -> [Float] {
        let range = columnRange(g)
        let width = range.count
        var out = [Float](repeating: 0, count: rows * width)
        weight.withUnsafeBufferPointer { w in
            out.withUnsafeMutableBufferPointer { o in
                let wp = w.baseAddress!, op = o.baseAddress!
                parallelChunks(count: rows, threads: threads, grain: 64) { chunk in
                    for r in chunk {
                        QuantPrimitives.rtnRow(wp + r * columns + range.lowerBound, count: width, bits: bits,
                                               output: op + r * width)
                    }
                }
            }
        }
        return out
    }

    /// Writes the RTN weight of candidate i into `target` (rows × columns).
    private func fillCandidate(_ i: Int, into target: UnsafeMutablePointer<Float>) {
        let bits = Salience.mixedBits(order: groupOrder, count: i, targetBits: targetBits, groupCount: groupCount)
        for g in 0..<groupCount {
            let range = columnRange(g)
            let block = rtnGroup(g, bits: Int(bits[g]))
            for r in 0..<rows {
                for (c, j) in range.enumerated() { target[r * columns + j] = block[r * range.count + c] }
            }
        }
    }

    private func buildCandidates() {
        guard let first = candidates.first, rows > 0, columns > 0 else { return }
        switch strategy {
        case .straightforward:
            candidateWeights = [Float](repeating: 0, count: candidates.count * rows * columns)
            candidateWeights.withUnsafeMutableBufferPointer { buffer in
                for (index, i) in candidates.enumerated() {
                    fillCandidate(i, into: buffer.baseAddress! + index * rows * columns)
                }
            }
        case .incremental:
            candidateWeights = [Float](repeating: 0, count: rows * columns)
            candidateWeights.withUnsafeMutableBufferPointer { fillCandidate(first, into: $0.baseAddress!) }
            let f = rankedGroupCount, n = targetBits
            for index in 1..<max(1, candidates.count) {
                let from = candidates[index - 1], to = candidates[index]
                var step: [(group: Int, delta: [Float])] = []
                // Groups order[from..<to] go N → N−1; order[f−to..<f−from] go N → N+1.
                for (g, bits) in groupOrder[from..<to].map({ ($0, n - 1) }) + groupOrder[(f - to)..<(f - from)].map({ ($0, n + 1) }) {
                    let base = rtnGroup(g, bits: n)
                    var delta = rtnGroup(g, bits: bits)
                    for x in delta.indices { delta[x] -= base[x] }
                    step.append((g, delta))
                }
                steps.append(step)
            }
        }
    }

    // MARK: - Samples

    /// Adds one calibration sample: X with `rows` tokens × `columns` features, row t at
    /// `x + t·ldx` (`ldx` defaults to `columns`). The full-precision output Y = X·Wᵀ + bias is
    /// computed here.
    /// - Throws: `QuantError.nonFinite` when a KL sum is NaN/Inf (non-finite activations); the
    ///   sample is then not counted.
    public func add(x: UnsafePointer<Float>, rows tokens: Int, ldx: Int? = nil) throws {
        let stride = ldx ?? columns
        precondition(tokens >= 0 && stride >= columns, "BitAllocationSearch.add: bad rows/ldx")
        // Nothing to compare (or no candidate): count the sample without computing Y.
        guard tokens > 0, rows > 0, !candidates.isEmpty else {
            return try record([Double](repeating: 0, count: candidates.count))
        }
        var y = [Float](repeating: 0, count: tokens * rows)
        weight.withUnsafeBufferPointer { w in
            y.withUnsafeMutableBufferPointer { yb in
                Kernels.sgemmNT(m: tokens, n: rows, k: columns, a: x, lda: stride, b: w.baseAddress!, ldb: columns,
                                c: yb.baseAddress!, ldc: rows, threads: threads)
                if let bias { for t in 0..<tokens { Kernels.add(bias, into: yb.baseAddress! + t * rows, count: rows) } }
            }
        }
        try y.withUnsafeBufferPointer { try add(x: x, rows: tokens, ldx: stride, output: $0.baseAddress!, ldy: rows) }
    }

    /// Adds one sample with a caller-computed full-precision output Y (tokens × R, row t at
    /// `output + t·ldy`, bias included as the layer applies it).
    public func add(x: UnsafePointer<Float>, rows tokens: Int, ldx: Int? = nil,
                    output: UnsafePointer<Float>, ldy: Int? = nil) throws {
        let stride = ldx ?? columns, yStride = ldy ?? rows
        precondition(tokens >= 0 && stride >= columns && yStride >= rows, "BitAllocationSearch.add: bad rows/ldx/ldy")
        guard tokens > 0, rows > 0, !candidates.isEmpty else {
            return try record([Double](repeating: 0, count: candidates.count))
        }
        let lnQ = SoftmaxKL.clampedLogSoftmax(output, tokens: tokens, width: rows, ld: yStride, threads: threads)
        var sums = [Double](repeating: 0, count: candidates.count)
        var o = [Float](repeating: 0, count: tokens * rows)
        let quantBias = biasOnQuantizedSide ? bias : nil
        o.withUnsafeMutableBufferPointer { ob in
            let op = ob.baseAddress!
            candidateWeights.withUnsafeBufferPointer { cw in
                let cp = cw.baseAddress!
                switch strategy {
                case .straightforward:
                    for index in candidates.indices {
                        Kernels.sgemmNT(m: tokens, n: rows, k: columns, a: x, lda: stride,
                                        b: cp + index * rows * columns, ldb: columns, c: op, ldc: rows, threads: threads)
                        sums[index] = SoftmaxKL.klSum(op, tokens: tokens, width: rows, bias: quantBias, lnQ: lnQ, threads: threads)
                    }
                case .incremental:
                    Kernels.sgemmNT(m: tokens, n: rows, k: columns, a: x, lda: stride, b: cp, ldb: columns,
                                    c: op, ldc: rows, threads: threads)
                    sums[0] = SoftmaxKL.klSum(op, tokens: tokens, width: rows, bias: quantBias, lnQ: lnQ, threads: threads)
                    for (index, step) in steps.enumerated() {
                        for (g, delta) in step {
                            let range = columnRange(g)
                            delta.withUnsafeBufferPointer { d in
                                Kernels.sgemmNT(m: tokens, n: rows, k: range.count, a: x + range.lowerBound, lda: stride,
                                                b: d.baseAddress!, ldb: range.count, c: op, ldc: rows,
                                                accumulate: true, threads: threads)
                            }
                        }
                        sums[index + 1] = SoftmaxKL.klSum(op, tokens: tokens, width: rows, bias: quantBias, lnQ: lnQ,
                                                          threads: threads)
                    }
                }
            }
        }
        try record(sums)
    }

    private func record(_ sums: [Double]) throws {
        if let bad = sums.firstIndex(where: { !$0.isFinite }) {
            throw QuantError.nonFinite("SBA sample \(sampleCount): KL sum for i = \(candidates[bad]) is \(sums[bad]) "
                                       + "(non-finite activations?)")
        }
        for index in sums.indices { klSums[index] += sums[index] }
        sampleCount += 1
    }

    /// The search result, or nil when there are no candidates (no full-width group, or the
    /// reference range with F ≤ 3: use `BitAllocation.uniform`) or no samples were added.
    public func result() -> SBAResult? {
        guard !candidates.isEmpty, sampleCount > 0 else { return nil }
        var bestIndex = 0
        for index in klSums.indices where klSums[index] < klSums[bestIndex] { bestIndex = index }
        return SBAResult(best: candidates[bestIndex], candidates: candidates, klSums: klSums,
                         samples: sampleCount, groupOrder: groupOrder)
    }
}
