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

    /// Bits per group for candidate i (spec §3.1): the i least salient groups (`order[0..<i]`)
    /// get N−1 bits, the i most salient (`order[K−i..<K]`) N+1, the others N; the mean over
    /// groups is exactly N.
    /// - Precondition: `order` is a permutation of 0..<K and 0 ≤ 2·count ≤ K.
    public static func mixedBits(order: [Int], count: Int, targetBits: Int) -> [UInt8] {
        let k = order.count
        precondition(count >= 0 && 2 * count <= k, "mixedBits: \(count) low/high groups out of \(k)")
        var bits = [UInt8](repeating: UInt8(targetBits), count: k)
        for g in order[0..<count] { bits[g] = UInt8(targetBits - 1) }
        for g in order[(k - count)..<k] { bits[g] = UInt8(targetBits + 1) }
        return bits
    }

    /// The SBA candidates i for K groups: clean 0…K/2 (uniform N bits included; works for any
    /// K ≥ 1), or the reference's 1…K/2−1 with `ReferenceCompat.searchRange` (empty for K ≤ 3,
    /// where the reference crashes).
    public static func searchCandidates(groupCount k: Int, compat: ReferenceCompat = []) -> [Int] {
        guard k > 0 else { return [] }
        if compat.contains(.searchRange) {
            return k / 2 > 1 ? Array(1..<(k / 2)) : []
        }
        return Array(0...(k / 2))
    }
}
