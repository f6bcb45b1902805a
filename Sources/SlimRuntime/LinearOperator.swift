import SlimKernels
import SlimPacking

// MARK: - Protocol

/// A linear layer y = x·Wᵀ (+ b) applied to a batch of rows, the seam between the runtime and
/// weight formats: the fp32 `DenseLinear` today, packed low-bit kernels later.
///
/// Implementations must be safe to call from one thread at a time per model (the runtime
/// never calls one operator concurrently with itself) and must not retain `x` or `out`.
public protocol LinearOperator: AnyObject, Sendable {
    /// Input features (columns of x).
    var inFeatures: Int { get }
    /// Output features (columns of out).
    var outFeatures: Int { get }

    /// out[rows × outFeatures] = x[rows × inFeatures] · Wᵀ (+ bias), both row-major with no
    /// padding between rows. `out` must not overlap `x`; its previous contents are ignored.
    /// `rows == 0` does nothing. `threads` bounds the worker count.
    func apply(x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, threads: Int)
}

// MARK: - Dense fp32

/// An fp32 linear layer: `weight` is `[outFeatures, inFeatures]` exactly as Hugging Face
/// stores it (so the GEMM reads it without a transpose), `bias` optional `[outFeatures]`.
public final class DenseLinear: LinearOperator {
    public let weight: FloatTensor
    public let bias: FloatTensor?

    public var inFeatures: Int { weight.cols }
    public var outFeatures: Int { weight.rows }

    /// - Precondition: `weight` is 2-D and `bias`, when given, has `weight.rows` elements.
    public init(weight: FloatTensor, bias: FloatTensor? = nil) {
        precondition(weight.shape.count == 2, "DenseLinear: weight must be 2-D, got shape \(weight.shape)")
        if let bias {
            precondition(bias.count == weight.rows, "DenseLinear: bias has \(bias.count) elements, expected \(weight.rows)")
        }
        self.weight = weight
        self.bias = bias
    }

    public func apply(x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, threads: Int) {
        guard rows > 0 else { return }
        let n = outFeatures, k = inFeatures
        Kernels.sgemmNT(m: rows, n: n, k: k, a: x, lda: k, b: weight.pointer, ldb: k,
                        c: out, ldc: n, threads: threads)
        addBias(bias, rows: rows, out: out, width: n)
    }
}

/// out[r] += bias for every row. HF adds the bias after the product (F.linear's addmm adds it
/// first; both are one rounding of the same sum up to ordering, far below the parity tolerance).
func addBias(_ bias: FloatTensor?, rows: Int, out: UnsafeMutablePointer<Float>, width: Int) {
    guard let bias else { return }
    for r in 0..<rows { Kernels.add(bias.pointer, into: out + r * width, count: width) }
}

// MARK: - Packed low-bit

/// What a packed linear multiplies its codes with on the CPU.
public enum PackedActivations: String, Sendable, CaseIterable {
    /// The fp32 activations themselves: the exact product of the dequantized weights (the default).
    case fp32
    /// Activations quantized to int8 in blocks of 32 (llama.cpp's Q8_0 granularity): a decode step
    /// runs the integer GEMV (`PackedMatrix.gemvInt8`, 2.5–3× the fp32 GEMV at LLaMA-7B shapes);
    /// several rows (prefill, scoring) compute the same product with the fp32 kernels
    /// (`gemmInt8`), so a perplexity measures what decoding computes.
    case int8
}

/// A slim-packed linear layer run by the fused dequantize-and-multiply kernels of SlimPacking
/// (GEMV for one row, tile dequantization + SGEMM for more; fp32 or int8 activations).
public final class PackedLinearOperator: LinearOperator {
    public let matrix: PackedMatrix
    public let bias: FloatTensor?
    public let activations: PackedActivations

    public var inFeatures: Int { matrix.columns }
    public var outFeatures: Int { matrix.rows }

    /// - Precondition: `bias`, when given, has `matrix.rows` elements.
    public init(_ matrix: PackedMatrix, bias: FloatTensor? = nil, activations: PackedActivations = .fp32) {
        if let bias {
            precondition(bias.count == matrix.rows, "PackedLinearOperator: bias has \(bias.count) elements, expected \(matrix.rows)")
        }
        self.matrix = matrix
        self.bias = bias
        self.activations = activations
    }

    public func apply(x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, threads: Int) {
        guard rows > 0 else { return }
        switch activations {
        case .fp32: matrix.gemm(x: x, tokens: rows, out: out, threads: threads)
        case .int8: matrix.gemmInt8(x: x, tokens: rows, out: out, threads: threads)
        }
        addBias(bias, rows: rows, out: out, width: outFeatures)
    }
}
