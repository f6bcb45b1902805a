// Entry point for quantizing one linear layer: RTN, GPTQ or SliM-LLM (SBA + SQC + GPTQ).

import Foundation
import SlimKernels

/// Quantizes one linear layer (weight R×C, y = x·Wᵀ) given its calibration Hessian.
///
/// Typical SliM-LLM use, per decoder layer and linear module:
/// ```
/// let acc = try HessianAccumulator(columns: C)
/// for x in samples { acc.add(x: x, rows: T) }                       // pass 1
/// let q = try LinearQuantizer(weight: W, rows: R, columns: C, hessian: acc.hessian(),
///                             options: QuantizationOptions(method: .slim, bits: 2))
/// let search = try q.makeBitSearch(bias: nil)
/// for x in samples { try search.add(x: x, rows: T) }                // pass 2 (same inputs)
/// let allocation: BitAllocation = search.result().map { .mixed(count: $0.best) } ?? .uniform
/// let out = try q.quantize(allocation: allocation)                  // or .fixed(bitsFromFile)
/// ```
/// The Hessian factorization (O(C³), Double) is done once and shared by the search ranking
/// and GPTQ (two factorizations only with `ReferenceCompat.doubleDamp`); pass one
/// `SharedHessian` to the modules that read the same input (q/k/v, gate/up) to factorize it
/// once for all of them.
/// Not thread-safe: use one instance per module (instances are independent).
public final class LinearQuantizer {
    public let rows: Int
    public let columns: Int
    public let options: QuantizationOptions
    /// K = ⌈C / groupSize⌉.
    public let groupCount: Int
    /// F: the groups SBA ranks and a `.mixed` allocation moves, 0..<F
    /// (`Salience.rankedGroupCount`: the full-width groups, or all K with
    /// `ReferenceCompat.rankShortGroup`).
    public let rankedGroupCount: Int

    private let weight: [Float]
    private let hessian: SharedHessian?

    /// The damped Hessians a run can need.
    private enum FactorKind: Hashable {
        /// H_dead + percdamp·mean(diag)·I (clean; also the reference without SBA).
        case clean
        /// H_dead + 0.01·I: the reference's search salience (`doubleDamp`).
        case searchDoubleDamp
        /// H_dead + 0.01·I + percdamp·mean(diag(H_dead + 0.01·I))·I: the reference's GPTQ after SBA.
        case gptqDoubleDamp
    }

    /// - Parameters:
    ///   - weight: R×C row-major (the module's weight as stored, `[out, in]`).
    ///   - hessian: C×C (`HessianAccumulator.hessian()`); required for `.gptq` and `.slim`,
    ///     optional for `.rtn` (only needed there for a `.mixed` allocation).
    /// - Throws: `QuantError` for invalid options, inconsistent shapes, non-finite weights or a
    ///   missing Hessian.
    public convenience init(weight: [Float], rows: Int, columns: Int, hessian: [Float]?,
                            options: QuantizationOptions) throws {
        try self.init(weight: weight, rows: rows, columns: columns,
                      sharedHessian: try hessian.map { try SharedHessian($0, columns: columns) }, options: options)
    }

    /// As `init(weight:rows:columns:hessian:options:)` with a Hessian (and its factorizations)
    /// shared with other modules.
    public init(weight: [Float], rows: Int, columns: Int, sharedHessian hessian: SharedHessian?,
                options: QuantizationOptions) throws {
        try options.validate()
        let count = try Shape.elementCount(rows, columns, "weight")
        guard weight.count == count else {
            throw QuantError.shapeMismatch("weight has \(weight.count) values, expected \(rows)×\(columns) = \(count)")
        }
        if let bad = weight.firstIndex(where: { !$0.isFinite }) {
            throw QuantError.nonFinite("weight[\(bad / columns), \(bad % columns)] is \(weight[bad])")
        }
        if let hessian {
            guard hessian.columns == columns else {
                throw QuantError.shapeMismatch("Hessian is \(hessian.columns)×\(hessian.columns), expected \(columns)×\(columns)")
            }
        } else if options.method != .rtn {
            throw QuantError.invalidArgument("\(options.method.rawValue) needs a calibration Hessian")
        }
        self.rows = rows
        self.columns = columns
        self.options = options
        self.groupCount = Shape.groupCount(columns: columns, groupSize: options.groupSize)
        self.rankedGroupCount = Salience.rankedGroupCount(columns: columns, groupSize: options.groupSize,
                                                          compat: options.compat)
        self.weight = weight
        self.hessian = hessian
    }

    // MARK: - Factors

    /// The factor GPTQ uses for `allocation` (and the final ranking of `.mixed`), computed once.
    public func gptqFactor(for allocation: BitAllocation) throws -> InverseHessianFactor {
        try factor(isMixed(allocation) && options.compat.contains(.doubleDamp) ? .gptqDoubleDamp : .clean)
    }

    /// The factor the SBA search ranks with: the GPTQ factor, or that of H_dead + 0.01·I under
    /// `ReferenceCompat.doubleDamp`.
    public func searchFactor() throws -> InverseHessianFactor {
        try factor(options.compat.contains(.doubleDamp) ? .searchDoubleDamp : .clean)
    }

    private func factor(_ kind: FactorKind) throws -> InverseHessianFactor {
        guard let hessian else { throw QuantError.invalidArgument("this quantizer has no Hessian") }
        let (percdamp, absolute): (Double, Double)
        switch kind {
        case .clean: (percdamp, absolute) = (options.percdamp, 0)
        case .searchDoubleDamp: (percdamp, absolute) = (0, 0.01)
        case .gptqDoubleDamp: (percdamp, absolute) = (options.percdamp, 0.01)
        }
        return try hessian.factor(percdamp: percdamp, absoluteDamping: absolute, maxRetries: options.maxDampingRetries,
                                  threads: options.threads)
    }

    private func isMixed(_ allocation: BitAllocation) -> Bool {
        if case .mixed = allocation { return true }
        return false
    }

    /// The weight with dead columns zeroed (clean GPTQ), or as given.
    private func preparedWeight(zeroing dead: [Int]) -> [Float] {
        var w = weight
        guard !dead.isEmpty else { return w }
        for r in 0..<rows { for j in dead { w[r * columns + j] = 0 } }
        return w
    }

    // MARK: - SBA

    /// The weight the search sees and its group salience (spec §3.2): clean, the dead-zeroed
    /// weight with the GPTQ factor (the same ranking as the final one); with `doubleDamp`, the
    /// weight as given with U of H_dead + 0.01·I.
    private func searchInputs() throws -> (weight: [Float], salience: [Double]) {
        let factor = try searchFactor()
        let w = options.compat.contains(.doubleDamp) ? weight : preparedWeight(zeroing: factor.deadColumns)
        return (w, Salience.groupSalience(weight: w, rows: rows, columns: columns, groupSize: options.groupSize,
                                          uDiagonal: factor.diagonal))
    }

    /// Group salience of the search ranking for all K groups (spec §3.2; clean: the same as the
    /// final ranking). Only the first `rankedGroupCount` take part in the ranking.
    public func searchSalience() throws -> [Double] { try searchInputs().salience }

    /// The ranked groups 0..<F by ascending salience (a short last group left out unless
    /// `rankShortGroup`).
    private func rankedOrder(_ salience: [Double]) -> [Int] {
        Salience.ascendingOrder(Array(salience.prefix(rankedGroupCount)))
    }

    /// A search over the candidates of `Salience.searchCandidates` for this layer, ranked by
    /// `searchSalience()` over the ranked groups; feed it the same calibration inputs as the
    /// Hessian, then quantize with `.mixed(count: result.best)` (or `.uniform` when `result()`
    /// is nil).
    /// - Parameters:
    ///   - bias: the layer's bias (R values), or nil.
    /// - Throws: `QuantError.invalidOption` unless the method is `.slim`.
    public func makeBitSearch(bias: [Float]? = nil, strategy: SBAStrategy = .incremental) throws -> BitAllocationSearch {
        guard options.method == .slim else {
            throw QuantError.invalidOption("SBA is part of the slim method, not \(options.method.rawValue)")
        }
        let (w, salience) = try searchInputs()
        return try BitAllocationSearch(weight: w, rows: rows, columns: columns, bias: bias,
                                       groupOrder: rankedOrder(salience), targetBits: options.bits,
                                       groupSize: options.groupSize,
                                       candidates: Salience.searchCandidates(rankedGroups: rankedGroupCount,
                                                                             compat: options.compat),
                                       compat: options.compat, strategy: strategy, threads: options.threads)
    }

    // MARK: - Quantize

    /// Quantizes the layer with the given allocation (see `BitAllocation`).
    /// - Throws: `QuantError.invalidAllocation` (wrong group count, bits outside 1…8, a mixed
    ///   count above F/2 (F = `rankedGroupCount`) or a target without N±1),
    ///   `.factorizationFailed`, `.nonFinite`.
    public func quantize(allocation: BitAllocation = .uniform) throws -> QuantizedLinear {
        let start = DispatchTime.now().uptimeNanoseconds
        let n = options.bits
        let needsFactor = options.method != .rtn || isMixed(allocation)
        let factor = needsFactor ? try gptqFactor(for: allocation) : nil
        let keepDead = isMixed(allocation) && options.compat.contains(.doubleDamp)
        var w = preparedWeight(zeroing: keepDead ? [] : (factor?.deadColumns ?? []))

        var symmetric: [Bool] = []
        let bits: [UInt8]
        switch allocation {
        case .uniform:
            bits = [UInt8](repeating: UInt8(n), count: groupCount)
        case .fixed(let given):
            guard given.count == groupCount else {
                throw QuantError.invalidAllocation("\(given.count) group bit widths for \(groupCount) groups "
                                                   + "(\(columns) columns, group size \(options.groupSize))")
            }
            if let bad = given.firstIndex(where: { !(1...8).contains($0) }) {
                throw QuantError.invalidAllocation("group \(bad) has \(given[bad]) bits (allowed 1…8)")
            }
            bits = given
        case .mixed(let count):
            guard (2...7).contains(n) else {
                throw QuantError.invalidAllocation("a mixed allocation needs 2 ≤ N ≤ 7, got N = \(n)")
            }
            guard count >= 0, 2 * count <= rankedGroupCount else {
                let short = rankedGroupCount < groupCount ? " (the short last group is not ranked)" : ""
                throw QuantError.invalidAllocation("\(count) low/high groups out of \(rankedGroupCount) ranked groups\(short) "
                                                   + "(max \(rankedGroupCount / 2))")
            }
            guard let factor else { throw QuantError.invalidAllocation("a mixed allocation needs a Hessian") }
            // Final ranking on the GPTQ-side weight and U (spec §3.4).
            let salience = Salience.groupSalience(weight: w, rows: rows, columns: columns, groupSize: options.groupSize,
                                                  uDiagonal: factor.diagonal)
            bits = Salience.mixedBits(order: rankedOrder(salience), count: count, targetBits: n, groupCount: groupCount)
            if options.compat.contains(.symLeak) {
                var leaking = true
                symmetric = bits.map { b in
                    if Int(b) != n - 1 { leaking = false }
                    return leaking
                }
            }
        }

        let fit: GroupFit = options.method == .slim ? .sqc(lambda: options.lambdaSalience) : .minMax
        let useFeedback = options.method != .rtn
        let output = GPTQ.run(weight: &w, rows: rows, columns: columns, groupSize: options.groupSize, bits: bits,
                              symmetricZero: symmetric, fit: fit, factor: useFeedback ? factor : nil,
                              halfParameters: !options.compat.contains(.fp32Parameters),
                              ternarySign: options.compat.contains(.ternarySign), threads: options.threads)
        var squared = 0.0
        for x in 0..<w.count {
            let d = Double(weight[x]) - Double(w[x])
            squared += d * d
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let stats = QuantStats(meanSquaredError: w.isEmpty ? 0 : squared / Double(w.count), proxyLoss: output.proxyLoss,
                               damping: factor?.damping ?? 0, dampingRetries: factor?.retries ?? 0,
                               deadColumns: factor?.deadColumns.count ?? 0,
                               seconds: elapsed)
        return QuantizedLinear(rows: rows, columns: columns, groupSize: options.groupSize, bits: bits,
                               scales: output.scales, zeros: output.zeros, codes: output.codes, dequantized: w,
                               stats: stats)
    }
}
