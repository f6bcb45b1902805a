import SlimIO
import SlimKernels

// 16-bit weights kept as stored. A Hugging Face checkpoint is F16 or BF16; widening it to fp32
// at load doubles its memory (LLaMA-7B: 13.5 → 27 GB, more than many machines have) and the
// bytes every decode step streams. With `DenseStorage.native` the runtime borrows such tensors
// from the memory map and the kernels widen them in registers, with bit-identical results.

// MARK: - Storage policy

/// How `LlamaWeights` holds dense F16/BF16 tensors.
public enum DenseStorage: Sendable, Equatable {
    /// Widened to fp32 once at load (what the quantizer needs: it reads and replaces weights).
    case fp32
    /// Linear weights and the embedding stay 16-bit, borrowed zero-copy from the source;
    /// norms and biases are still fp32. Products are bit-identical to `.fp32`.
    case native
}

// MARK: - HalfTensor

/// A read-only row-major F16 or BF16 tensor borrowed from a `TensorSource` (kept alive by this
/// object). Any alignment: the kernels load it unaligned.
public final class HalfTensor: @unchecked Sendable {
    public let shape: [Int]
    public let count: Int
    public let format: StorageFormat
    /// The first element's first byte; `count · 2` bytes.
    public let bytes: UnsafeRawPointer
    private let owners: [AnyObject]

    /// Rows of a matrix: `shape[0]`, or 1 for a vector.
    public var rows: Int { shape.count >= 2 ? shape[0] : 1 }
    /// Elements per row.
    public var cols: Int { shape.count >= 2 ? count / max(shape[0], 1) : count }

    /// The view of an F16 or BF16 tensor, or nil for any other dtype (and on big-endian hosts,
    /// where the stored little-endian bits would need swapping: there the caller widens).
    /// - Throws: `FileError` naming `path` when the byte count does not match the shape.
    public init?(_ view: TensorView, source: AnyObject, path: String) throws(FileError) {
        #if _endian(big)
        return nil
        #else
        let format: StorageFormat
        switch view.dtype {
        case .f16: format = .f16
        case .bf16: format = .bf16
        default: return nil
        }
        guard let n = FloatTensor.elementCount(view.shape),
              case let (byteCount, overflow) = n.multipliedReportingOverflow(by: 2), !overflow,
              byteCount == view.bytes.count,
              // An empty tensor may have no address; it is never read.
              let base = view.bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 2)
        else {
            throw FileError(path, "tensor \(view.name) has \(view.bytes.count) bytes, which does not match \(view.dtype.rawValue) \(view.shape)")
        }
        shape = view.shape
        count = n
        self.format = format
        bytes = base
        owners = [source] + (view.owner.map { [$0] } ?? [])
        #endif
    }

    /// Widens row `r` (`cols` elements) into `out`.
    /// - Precondition: `0 <= r < rows`.
    public func widenRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "HalfTensor: row \(r) outside 0..<\(rows)")
        Kernels.widen(bytes, format: format, first: r * cols, count: cols, into: out)
    }
}

// MARK: - A dense matrix of either kind

/// A dense weight matrix the runtime reads rows of (the embedding): fp32 or 16-bit.
public enum DenseMatrix: Sendable {
    case f32(FloatTensor)
    case half(HalfTensor)

    public var rows: Int {
        switch self {
        case .f32(let t): return t.rows
        case .half(let t): return t.rows
        }
    }

    public var cols: Int {
        switch self {
        case .f32(let t): return t.cols
        case .half(let t): return t.cols
        }
    }

    /// The fp32 tensor, or nil when the matrix is 16-bit.
    public var fp32: FloatTensor? {
        if case .f32(let t) = self { return t }
        return nil
    }

    /// True when the data lives in the source's storage (16-bit tensors always do).
    public var isBorrowed: Bool {
        switch self {
        case .f32(let t): return t.isBorrowed
        case .half: return true
        }
    }

    /// Copies (widens) row `r` into `out` (`cols` floats).
    /// - Precondition: `0 <= r < rows`.
    public func copyRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        switch self {
        case .f32(let t):
            precondition(r >= 0 && r < t.rows, "DenseMatrix: row \(r) outside 0..<\(t.rows)")
            out.update(from: t.pointer + r * t.cols, count: t.cols)
        case .half(let t):
            t.widenRow(r, into: out)
        }
    }

    /// The classifier that multiplies by this matrix (a tied lm_head).
    func linear() -> any LinearOperator {
        switch self {
        case .f32(let t): return DenseLinear(weight: t)
        case .half(let t): return HalfLinear(weight: t)
        }
    }
}

// MARK: - 16-bit linear

/// A linear layer over a 16-bit weight `[outFeatures, inFeatures]` as stored: the same products
/// as `DenseLinear` on its fp32 widening, bit for bit, from half the memory.
public final class HalfLinear: LinearOperator {
    public let weight: HalfTensor
    public let bias: FloatTensor?

    public var inFeatures: Int { weight.cols }
    public var outFeatures: Int { weight.rows }

    /// - Precondition: `weight` is 2-D and `bias`, when given, has `weight.rows` elements.
    public init(weight: HalfTensor, bias: FloatTensor? = nil) {
        precondition(weight.shape.count == 2, "HalfLinear: weight must be 2-D, got shape \(weight.shape)")
        if let bias {
            precondition(bias.count == weight.rows, "HalfLinear: bias has \(bias.count) elements, expected \(weight.rows)")
        }
        self.weight = weight
        self.bias = bias
    }

    public func apply(x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>, threads: Int) {
        guard rows > 0 else { return }
        let n = outFeatures, k = inFeatures
        Kernels.gemmNT(m: rows, n: n, k: k, a: x, lda: k, b: weight.bytes, bFormat: weight.format, ldb: k,
                       c: out, ldc: n, threads: threads)
        addBias(bias, rows: rows, out: out, width: n)
    }
}
