// The output of quantizing one linear layer: fake-quantized weights plus everything a packer
// needs (bits per group, per-(row, group) scales and zeros, integer codes).

/// Diagnostics of one quantization run.
public struct QuantStats: Sendable, Equatable {
    /// mean over all R×C entries of (W − Ŵ)², W = the weight as given (before dead-column zeroing).
    public var meanSquaredError: Double
    /// GPTQ's proxy loss Σ_{r,j} ((w − q)/U_jj)² over the error-updated weights w (GPTQ prints
    /// half of this). For RTN, U = I: the plain sum of squared rounding errors.
    public var proxyLoss: Double
    /// The value added to the Hessian diagonal (absolute, including retries); 0 for RTN.
    public var damping: Double
    /// Cholesky retries with 10× damping.
    public var dampingRetries: Int
    /// Number of dead columns (H_jj == 0).
    public var deadColumns: Int
    /// Wall-clock seconds of `quantize` (factorization included when it happened there).
    public var seconds: Double

    public init(meanSquaredError: Double = 0, proxyLoss: Double = 0, damping: Double = 0, dampingRetries: Int = 0,
                deadColumns: Int = 0, seconds: Double = 0) {
        self.meanSquaredError = meanSquaredError
        self.proxyLoss = proxyLoss
        self.damping = damping
        self.dampingRetries = dampingRetries
        self.deadColumns = deadColumns
        self.seconds = seconds
    }
}

/// One quantized linear layer `y = x·Wᵀ`, W of shape rows (outputs) × columns (inputs), in
/// groups of `groupSize` consecutive columns (the last group may be shorter).
///
/// Reconstruction (`dequantized` holds exactly these values):
/// - b ≥ 2: ŵ[r, j] = scales[r, g]·(codes[r, j] − zeros[r, g]), codes in 0…2^b − 1, zeros
///   integer-valued in the same range.
/// - b = 1: ŵ[r, j] = sign·scales[r, g] + zeros[r, g] with scales = α = mean|w|, zeros = μ =
///   mean w of the row's group, and codes holding the two-bit two's complement of
///   sign(w − μ): 1 = +1, 3 = −1, 0 = exactly zero (w == μ, ŵ = μ; rare). This is the field
///   the reference's packed format stores for 1-bit groups (spec §8.3).
public struct QuantizedLinear: Sendable {
    public let rows: Int
    public let columns: Int
    public let groupSize: Int
    /// Bits per group (K = ⌈columns / groupSize⌉ entries, each 1…8).
    public let bits: [UInt8]
    /// rows × K, row-major.
    public let scales: [Float]
    /// rows × K, row-major.
    public let zeros: [Float]
    /// rows × columns, row-major.
    public let codes: [UInt8]
    /// rows × columns, row-major: the fake-quantized weight.
    public let dequantized: [Float]
    public let stats: QuantStats

    public init(rows: Int, columns: Int, groupSize: Int, bits: [UInt8], scales: [Float], zeros: [Float],
                codes: [UInt8], dequantized: [Float], stats: QuantStats) {
        self.rows = rows
        self.columns = columns
        self.groupSize = groupSize
        self.bits = bits
        self.scales = scales
        self.zeros = zeros
        self.codes = codes
        self.dequantized = dequantized
        self.stats = stats
    }

    /// K, the number of groups.
    public var groupCount: Int { bits.count }

    /// The columns of group g.
    public func columnRange(group g: Int) -> Range<Int> {
        (g * groupSize)..<min(columns, (g + 1) * groupSize)
    }

    /// Mean bits per weight, weighted by group width (exactly N for SBA allocations: only
    /// full-width groups move to N±1, unless `ReferenceCompat.rankShortGroup`).
    public var averageBits: Double {
        guard columns > 0 else { return 0 }
        var total = 0
        for g in 0..<groupCount { total += Int(bits[g]) * columnRange(group: g).count }
        return Double(total) / Double(columns)
    }

    /// Rebuilds the weights from codes, scales and zeros (the formulas above); equals
    /// `dequantized` bit for bit. Packers can use it to validate what they wrote.
    public func reconstruct() -> [Float] {
        var out = [Float](repeating: 0, count: rows * columns)
        let k = groupCount
        for r in 0..<rows {
            for g in 0..<k {
                let b = Int(bits[g])
                let s = scales[r * k + g], z = zeros[r * k + g]
                for j in columnRange(group: g) {
                    let code = codes[r * columns + j]
                    out[r * columns + j] = b == 1
                        ? QuantPrimitives.binarySign(code: code) * s + z
                        : QuantPrimitives.dequantize(code: Float(code), scale: s, zero: z)
                }
            }
        }
        return out
    }
}
