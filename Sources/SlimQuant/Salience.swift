// Salience (spec §2, §3.2, §3.4) and the SBA bit assignment (spec §3.1).

/// Weight salience δ_rj = w_rj² / U_jj² (the reference code's expression: the OBS saliency on
/// the Cholesky-sequential inverse diagonal, not the paper's literal [H⁻¹]_jj²), group sums,
/// and the SliM-LLM bit assignment by salience rank.
public enum Salience {
    /// S_g = Σ_{r, j ∈ g} w_rj² / U_jj² for every group (a sum, as the reference; the last group
    /// may be shorter). Elements are evaluated in Float (as the reference) and summed in Double.
    /// - Parameters:
    ///   - weight: rows × columns, row-major.
    ///   - uDiagonal: U_jj for every column (`InverseHessianFactor.diagonal`).
    public static func groupSalience(weight: [Float], rows: Int, columns: Int, groupSize: Int,
                                     uDiagonal: [Float]) -> [Double] {
        precondition(weight.count == rows * columns && uDiagonal.count == columns && groupSize >= 1,
                     "groupSalience: inconsistent shapes")
        let groups = Shape.groupCount(columns: columns, groupSize: groupSize)
        var sums = [Double](repeating: 0, count: groups)
        for r in 0..<rows {
            let base = r * columns
            for g in 0..<groups {
                var s = 0.0
                for j in (g * groupSize)..<min(columns, (g + 1) * groupSize) {
                    let w = weight[base + j]
                    let d = uDiagonal[j]
                    s += Double((w * w) / (d * d))
                }
                sums[g] += s
            }
        }
        return sums
    }

    /// Group indices by ascending salience; ties (and NaN, placed last) keep index order — a
    /// stable sort on (salience, index), where the reference's numpy quicksort is unstable.
    public static func ascendingOrder(_ salience: [Double]) -> [Int] {
        salience.indices.sorted { a, b in
            let x = salience[a], y = salience[b]
            if x.isNaN || y.isNaN {
                if x.isNaN != y.isNaN { return y.isNaN }
                return a < b
            }
            return x != y ? x < y : a < b
        }
    }

    /// The number F of groups SBA ranks (spec §3.1); they are always the first F groups. Clean:
    /// the full-width groups, ⌊C / G⌋ — a last group shorter than `groupSize` is never ranked
    /// and always gets N bits, so moving i groups to N−1 and i to N+1 keeps the width-weighted
    /// mean code bits at exactly N. With `ReferenceCompat.rankShortGroup`: all K = ⌈C / G⌉
    /// groups (the reference).
    public static func rankedGroupCount(columns: Int, groupSize: Int, compat: ReferenceCompat = []) -> Int {
        precondition(columns >= 0 && groupSize >= 1, "rankedGroupCount: \(columns) columns, group size \(groupSize)")
        return compat.contains(.rankShortGroup) ? Shape.groupCount(columns: columns, groupSize: groupSize)
            : columns / groupSize
    }

    /// Bits per group for candidate i (spec §3.1). `order` ranks the F groups 0..<F
    /// (`rankedGroupCount`) by ascending salience: the i least salient (`order[0..<i]`) get N−1
    /// bits, the i most salient (`order[F−i..<F]`) N+1, the others N; groups F..<`groupCount`
    /// (a short last group that is not ranked) get N. The F ranked groups have the same width,
    /// so the width-weighted mean is exactly N (with `rankShortGroup` the short group may be
    /// among them: only the mean over groups is N).
    /// - Parameter groupCount: K, the length of the result (default F = `order.count`).
    /// - Precondition: `order` is a permutation of 0..<F, 0 ≤ 2·count ≤ F and F ≤ `groupCount`.
    public static func mixedBits(order: [Int], count: Int, targetBits: Int, groupCount: Int? = nil) -> [UInt8] {
        let f = order.count, k = groupCount ?? f
        precondition(count >= 0 && 2 * count <= f && f <= k, "mixedBits: \(count) low/high groups out of \(f) (of \(k))")
        var bits = [UInt8](repeating: UInt8(targetBits), count: k)
        for g in order[0..<count] { bits[g] = UInt8(targetBits - 1) }
        for g in order[(f - count)..<f] { bits[g] = UInt8(targetBits + 1) }
        return bits
    }

    /// The SBA candidates i for F ranked groups (`rankedGroupCount`): clean 0…F/2 (uniform N
    /// bits included; works for any F ≥ 1), or the reference's 1…F/2−1 with
    /// `ReferenceCompat.searchRange` (empty for F ≤ 3, where the reference crashes). Empty for
    /// F = 0 (a layer narrower than one group: nothing to rank, the caller quantizes uniformly).
    public static func searchCandidates(rankedGroups f: Int, compat: ReferenceCompat = []) -> [Int] {
        guard f > 0 else { return [] }
        if compat.contains(.searchRange) {
            return f / 2 > 1 ? Array(1..<(f / 2)) : []
        }
        return Array(0...(f / 2))
    }
}
