// Weight matrices kept in their 16-bit storage format (F16 / BF16, as Hugging Face checkpoints
// store them) instead of being widened to fp32 once at load: half the memory and half the bytes
// a decode step streams. Values are widened in registers by the GEMV and while packing B panels
// in the GEMM, so the products are bit for bit those of the fp32 conversion.

// MARK: - Storage formats

/// How the elements of a weight matrix are stored in memory (little-endian).
public enum StorageFormat: String, Sendable, Equatable, CaseIterable {
    case f32
    /// IEEE binary16.
    case f16
    /// bfloat16: the upper half of a binary32.
    case bf16

    /// Bytes per element.
    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

// MARK: - Public API

extension Kernels {
    /// y[m] = A[m×k] · x[k] (or y += A · x) for A stored as `format`: `Kernels.gemv` on a matrix
    /// that may be 16-bit. Row i starts `i · lda` elements after `a`; `a` needs no alignment.
    /// - Result: bit-identical to `gemv` on the fp32 conversion of A (F16 and BF16 widen exactly).
    /// - Edge cases and threading as for `gemv`.
    public static func gemv(m: Int, k: Int, a: UnsafeRawPointer, format: StorageFormat, lda: Int,
                            x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                            accumulate: Bool = false, threads: Int = Kernels.defaultThreads) {
        precondition(m >= 0 && k >= 0, "gemv: negative size m=\(m) k=\(k)")
        precondition(lda >= k, "gemv: lda=\(lda) < k=\(k)")
        GemvKernel.run(rows: m, k: k, a: a, format: format, lda: lda, x: x, y: y, accumulate: accumulate,
                       threads: threads)
    }

    /// C[m×n] = A[m×k] · B[n×k]ᵀ (or C += A · Bᵀ) for fp32 activations A and a weight B stored as
    /// `bFormat` (row j starts `j · ldb` elements after `b`; no alignment needed).
    /// - Result: bit-identical to `sgemmNT` on the fp32 conversion of B: the GEMM widens B while
    ///   packing its panels (which it does anyway), and one row (`m == 1`) takes the GEMV.
    /// - Edge cases, accuracy and threading as for `sgemmNT`.
    public static func gemmNT(m: Int, n: Int, k: Int,
                              a: UnsafePointer<Float>, lda: Int,
                              b: UnsafeRawPointer, bFormat: StorageFormat, ldb: Int,
                              c: UnsafeMutablePointer<Float>, ldc: Int,
                              accumulate: Bool = false, threads: Int = Kernels.defaultThreads) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemmNT: negative size m=\(m) n=\(n) k=\(k)")
        precondition(lda >= k && ldb >= k && ldc >= n,
                     "gemmNT: leading dimension too small (lda=\(lda) ldb=\(ldb) ldc=\(ldc), k=\(k) n=\(n))")
        if m == 1 && k > 0 {
            // One activation row: C row = B · a, bandwidth-bound on B.
            GemvKernel.run(rows: n, k: k, a: b, format: bFormat, lda: ldb, x: a, y: c, accumulate: accumulate,
                           threads: threads)
            return
        }
        GemmDriver.run(GemmProblem(m: m, n: n, k: k, a: a, lda: lda, aLayout: .kContiguous,
                                   b: b, ldb: ldb, bLayout: .kContiguous, c: c, ldc: ldc,
                                   alpha: 1, accumulate: accumulate, upperOnly: false, bFormat: bFormat),
                       threads: threads)
    }

    /// C[m×n] = A[m×k] · B[k×n] (or C += A · B) for fp32 A and a B stored as `bFormat` (row p
    /// starts `p · ldb` elements after `b`; no alignment needed): products with a KV cache's
    /// values, which are (positions × width) rows.
    /// - Result: bit-identical to `sgemmNN` on the fp32 conversion of B (widened while packing).
    /// - Edge cases, accuracy and threading as for `sgemmNT`.
    public static func gemmNN(m: Int, n: Int, k: Int,
                              a: UnsafePointer<Float>, lda: Int,
                              b: UnsafeRawPointer, bFormat: StorageFormat, ldb: Int,
                              c: UnsafeMutablePointer<Float>, ldc: Int,
                              accumulate: Bool = false, threads: Int = Kernels.defaultThreads) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemmNN: negative size m=\(m) n=\(n) k=\(k)")
        precondition(lda >= k && ldb >= n && ldc >= n,
                     "gemmNN: leading dimension too small (lda=\(lda) ldb=\(ldb) ldc=\(ldc), k=\(k) n=\(n))")
        GemmDriver.run(GemmProblem(m: m, n: n, k: k, a: a, lda: lda, aLayout: .kContiguous,
                                   b: b, ldb: ldb, bLayout: .mnContiguous, c: c, ldc: ldc,
                                   alpha: 1, accumulate: accumulate, upperOnly: false, bFormat: bFormat),
                       threads: threads)
    }

    /// Widens `count` elements of `format` starting `first` elements after `source` (any
    /// alignment) into `destination`. Exact for every format.
    public static func widen(_ source: UnsafeRawPointer, format: StorageFormat, first: Int, count: Int,
                             into destination: UnsafeMutablePointer<Float>) {
        precondition(first >= 0 && count >= 0, "widen: negative range \(first), \(count)")
        switch format {
        case .f32: F32Rows.widen(source, first, count, destination)
        case .f16: F16Rows.widen(source, first, count, destination)
        case .bf16: BF16Rows.widen(source, first, count, destination)
        }
    }
}

// MARK: - Element loaders

/// Loads of a row of weights in one storage format, widened to Float. Element indices, byte
/// addresses computed here; nothing needs alignment.
protocol RowElements {
    static var byteSize: Int { get }
    /// Elements i ..< i + 8 of `row`.
    static func load8(_ row: UnsafeRawPointer, _ i: Int) -> SIMD8<Float>
    /// Element i of `row`.
    static func load(_ row: UnsafeRawPointer, _ i: Int) -> Float
}

extension RowElements {
    /// Elements first ..< first + count of `row` into `out`.
    @inline(__always)
    static func widen(_ row: UnsafeRawPointer, _ first: Int, _ count: Int, _ out: UnsafeMutablePointer<Float>) {
        let dst = UnsafeMutableRawPointer(out)
        var i = 0
        while i &+ 8 <= count {
            dst.storeBytes(of: load8(row, first &+ i), toByteOffset: i &* 4, as: SIMD8<Float>.self)
            i &+= 8
        }
        while i < count {
            out[i] = load(row, first &+ i)
            i &+= 1
        }
    }
}

enum F32Rows: RowElements {
    static var byteSize: Int { 4 }
    @inline(__always)
    static func load8(_ row: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        row.loadUnaligned(fromByteOffset: i &* 4, as: SIMD8<Float>.self)
    }
    @inline(__always)
    static func load(_ row: UnsafeRawPointer, _ i: Int) -> Float {
        row.loadUnaligned(fromByteOffset: i &* 4, as: Float.self)
    }
}

enum F16Rows: RowElements {
    static var byteSize: Int { 2 }
    @inline(__always)
    static func load8(_ row: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        #if os(Linux) && (arch(x86_64) || arch(arm64))
        // Lane by lane through transparent initialisers, which LLVM fuses into one vcvtph2ps
        // (F16C) / fcvtl pair; the stdlib's vector-to-vector init is not always inlined in a
        // loop this size, and a call per 8 weights costs more than the arithmetic.
        let h = row.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<Float16>.self)
        return SIMD8<Float>(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]),
                            Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]))
        #else
        let bits = row.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt16>.self)
        var v = SIMD8<Float>()
        for lane in 0..<8 { v[lane] = Kernels.Reference.f16ToF32(bits[lane]) }
        return v
        #endif
    }
    @inline(__always)
    static func load(_ row: UnsafeRawPointer, _ i: Int) -> Float {
        Kernels.Reference.f16ToF32(UInt16(littleEndian: row.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)))
    }
}

enum BF16Rows: RowElements {
    static var byteSize: Int { 2 }
    @inline(__always)
    static func load8(_ row: UnsafeRawPointer, _ i: Int) -> SIMD8<Float> {
        // Lane by lane (see F16Rows): one vpmovzxwd and one vpslld.
        let h = row.loadUnaligned(fromByteOffset: i &* 2, as: SIMD8<UInt16>.self)
        let w = SIMD8<UInt32>(UInt32(h[0]), UInt32(h[1]), UInt32(h[2]), UInt32(h[3]),
                              UInt32(h[4]), UInt32(h[5]), UInt32(h[6]), UInt32(h[7]))
        return unsafeBitCast(w &<< 16, to: SIMD8<Float>.self)
    }
    @inline(__always)
    static func load(_ row: UnsafeRawPointer, _ i: Int) -> Float {
        Float(bitPattern: UInt32(row.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)) << 16)
    }
}
