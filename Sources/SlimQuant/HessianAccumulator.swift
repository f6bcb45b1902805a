// The GPTQ proxy Hessian H = (2/nSeq)·Σ_k X_kᵀX_k over calibration sequences (spec §1.5).

import SlimKernels

/// Accumulates the proxy Hessian of one linear layer's inputs.
///
/// H = (2/n)·Σ_k X_kᵀ·X_k, X_k the T×C input of calibration sequence k and n the number of
/// SEQUENCES added (not tokens), as the reference's running mean computes it (the factor 2
/// only matters for absolute damping).
///
/// Precision: each sequence's X_kᵀX_k is formed in Float by `Kernels.syrkAccumulate` (one
/// fused-multiply-add chain per entry over the tokens, like the reference's fp32 matmul);
/// with `.double` (default) the per-sequence products are summed in Double, so the result does
/// not lose digits as sequences pile up (the reference sums in fp32). `.float` sums in Float
/// (half the memory: C² Floats instead of C² Doubles + C² Floats of scratch). Both are
/// independent of the thread count (the syrk kernel is).
public final class HessianAccumulator {
    public enum Precision: Sendable { case double, float }

    /// C, the number of input features.
    public let columns: Int
    public let precision: Precision
    /// Upper bound on worker threads (results never depend on it).
    public var threads: Int
    /// Sequences added so far (the n of 2/n).
    public private(set) var sequenceCount: Int = 0

    private var sumDouble: [Double]
    private var sumFloat: [Float]
    private var scratch: [Float]

    /// - Throws: `QuantError.shapeMismatch` when `columns` is negative or C² overflows.
    public init(columns: Int, precision: Precision = .double, threads: Int = Kernels.defaultThreads) throws {
        let count = try Shape.elementCount(columns, columns, "Hessian")
        self.columns = columns
        self.precision = precision
        self.threads = threads
        switch precision {
        case .double:
            sumDouble = [Double](repeating: 0, count: count)
            sumFloat = []
            scratch = [Float](repeating: 0, count: count)
        case .float:
            sumDouble = []
            sumFloat = [Float](repeating: 0, count: count)
            scratch = []
        }
    }

    /// Adds one calibration sequence's inputs: X with `rows` tokens × `columns` features, row i
    /// at `x + i·ldx` (`ldx` defaults to `columns`). `sequences` is how many calibration
    /// sequences these rows represent (pass k when k sequences are stacked in one X).
    /// - Precondition: the buffer holds `rows` rows of `ldx ≥ columns` values (programmer input).
    public func add(x: UnsafePointer<Float>, rows: Int, ldx: Int? = nil, sequences: Int = 1) {
        let stride = ldx ?? columns
        precondition(rows >= 0 && stride >= columns && sequences >= 0,
                     "HessianAccumulator.add: rows \(rows), ldx \(stride) < \(columns) or sequences \(sequences)")
        sequenceCount += sequences
        guard rows > 0, columns > 0 else { return }
        switch precision {
        case .float:
            sumFloat.withUnsafeMutableBufferPointer {
                Kernels.syrkAccumulate(x: x, rows: rows, cols: columns, ldx: stride, h: $0.baseAddress!,
                                       scale: 1, mirror: false, threads: threads)
            }
        case .double:
            let n = columns
            scratch.withUnsafeMutableBufferPointer { s in
                let sp = s.baseAddress!
                // Only the upper triangle is computed and read.
                for i in 0..<n { (sp + i * n + i).update(repeating: 0, count: n - i) }
                Kernels.syrkAccumulate(x: x, rows: rows, cols: n, ldx: stride, h: sp, scale: 1,
                                       mirror: false, threads: threads)
                sumDouble.withUnsafeMutableBufferPointer { d in
                    let dp = d.baseAddress!
                    parallelChunks(count: n, threads: threads, grain: 64) { range in
                        for i in range {
                            for j in i..<n { dp[i * n + j] += Double(sp[i * n + j]) }
                        }
                    }
                }
            }
        }
    }

    /// Adds one sequence from an array of `rows × columns` values.
    /// - Throws: `QuantError.shapeMismatch` when the count is not a multiple of `columns`.
    public func add(_ x: [Float], sequences: Int = 1) throws {
        guard columns > 0, x.count % columns == 0 else {
            throw QuantError.shapeMismatch("activation array of \(x.count) values is not rows × \(columns)")
        }
        x.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { sequenceCount += sequences; return }
            add(x: base, rows: x.count / columns, sequences: sequences)
        }
    }

    /// H = (2/n)·Σ XᵀX as a symmetric C×C Float matrix (row-major); all zeros when nothing was
    /// added (every column is then dead).
    public func hessian() -> [Float] {
        let n = columns
        var h = [Float](repeating: 0, count: n * n)
        guard sequenceCount > 0 else { return h }
        let factor = 2 / Double(sequenceCount)
        for i in 0..<n {
            for j in i..<n {
                let value = precision == .double ? Float(sumDouble[i * n + j] * factor)
                                                 : Float(Double(sumFloat[i * n + j]) * factor)
                h[i * n + j] = value
                h[j * n + i] = value
            }
        }
        return h
    }

    /// Clears the sums (the buffers are kept).
    public func reset() {
        sequenceCount = 0
        for i in sumDouble.indices { sumDouble[i] = 0 }
        for i in sumFloat.indices { sumFloat[i] = 0 }
    }
}
