// Linear layers resident on the GPU: packed (GPU layout) or dense fp16/bf16/fp32.

import CSlimCUDA
import SlimKernels

/// Element type of dense weights on the device.
public enum CUDAWeightType: Int32, Sendable {
    case f32 = 0
    case f16 = 1
    case bf16 = 2

    /// Bytes per element.
    public var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// Dense weights in the cheapest exact device form: F16 and BF16 as stored, F32 as fp16 when
/// every value is an fp16 number, else fp32.
public enum CUDADenseWeights {
    case f32([Float])
    case f16([UInt16])
    case bf16([UInt16])

    /// Picks fp16 only when the conversion loses nothing, so GPU and CPU use the same weights.
    public init(exactly values: [Float]) {
        var halves = [UInt16](repeating: 0, count: values.count)
        var exact = true
        values.withUnsafeBufferPointer { v in
            halves.withUnsafeMutableBufferPointer { h in
                for i in 0..<v.count {
                    let bits = Kernels.Reference.f32ToF16(v[i])
                    if Kernels.Reference.f16ToF32(bits) != v[i] && !v[i].isNaN {
                        exact = false
                        return
                    }
                    h[i] = bits
                }
            }
        }
        self = exact ? .f16(halves) : .f32(values)
    }

    var type: CUDAWeightType {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        }
    }

    var count: Int {
        switch self {
        case .f32(let v): return v.count
        case .f16(let v), .bf16(let v): return v.count
        }
    }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .f32(let v): return try v.withUnsafeBytes(body)
        case .f16(let v), .bf16(let v): return try v.withUnsafeBytes(body)
        }
    }
}

/// A linear y = x·Wᵀ (+ b) on the device. A model that adopts it (`CUDAModel`) takes over its
/// device memory; the object is then spent.
public final class CUDALinear: @unchecked Sendable {
    public let context: CUDAContext
    public let rows: Int
    public let columns: Int
    public let isPacked: Bool
    /// Nil once a model has adopted it.
    var handle: OpaquePointer?

    private init(context: CUDAContext, handle: OpaquePointer, rows: Int, columns: Int, packed: Bool) {
        self.context = context
        self.handle = handle
        self.rows = rows
        self.columns = columns
        isPacked = packed
    }

    deinit {
        if let handle { context.library.api.linear_destroy(handle) }
    }

    /// Uploads a packed linear.
    /// - Parameter bias: `rows` values or nil.
    /// - Throws: `CUDAError` for out-of-memory or a layout the library rejects.
    public static func packed(_ layout: GPUPackedLayout, bias: [Float]? = nil, context: CUDAContext) throws(CUDAError) -> CUDALinear {
        precondition(bias == nil || bias!.count == layout.rows, "CUDALinear.packed: bias does not have \(layout.rows) values")
        var out: OpaquePointer?
        let status = layout.bits.withUnsafeBufferPointer { b in
            layout.words.withUnsafeBufferPointer { w in
                layout.params.withUnsafeBufferPointer { p in
                    withOptionalPointer(bias) { biasPointer in
                        var desc = slim_cuda_packed_desc(rows: Int32(layout.rows), columns: Int32(layout.columns),
                                                         group_size: Int32(layout.groupSize), bits: b.baseAddress,
                                                         words: w.baseAddress, word_count: Int64(w.count),
                                                         params: p.baseAddress, param_count: Int64(p.count),
                                                         bias: biasPointer)
                        return context.library.api.linear_create_packed(context.handle, &desc, &out)
                    }
                }
            }
        }
        try context.check(status, "upload of a \(layout.rows)×\(layout.columns) packed linear")
        return CUDALinear(context: context, handle: out!, rows: layout.rows, columns: layout.columns, packed: true)
    }

    /// Uploads a dense linear of `rows` × `columns` weights (row-major, HF layout).
    public static func dense(_ weights: CUDADenseWeights, rows: Int, columns: Int, bias: [Float]? = nil,
                             context: CUDAContext) throws(CUDAError) -> CUDALinear {
        precondition(weights.count == rows * columns, "CUDALinear.dense: \(weights.count) weights for \(rows)×\(columns)")
        precondition(bias == nil || bias!.count == rows, "CUDALinear.dense: bias does not have \(rows) values")
        var out: OpaquePointer?
        let status = weights.withUnsafeBytes { w in
            withOptionalPointer(bias) { biasPointer in
                context.library.api.linear_create_dense(context.handle, Int32(rows), Int32(columns), weights.type.rawValue,
                                                        w.baseAddress, biasPointer, &out)
            }
        }
        try context.check(status, "upload of a \(rows)×\(columns) dense linear")
        return CUDALinear(context: context, handle: out!, rows: rows, columns: columns, packed: false)
    }

    /// y[tokens × rows] (+)= x[tokens × columns]·Wᵀ (+ bias), on device buffers.
    /// - Precondition: the buffers hold at least tokens·columns and tokens·rows values.
    public func apply(x: CUDABuffer<Float>, tokens: Int, y: CUDABuffer<Float>, accumulate: Bool = false) throws(CUDAError) {
        precondition(x.count >= tokens * columns && y.count >= tokens * rows, "CUDALinear.apply: buffers too small")
        let h = try live()
        try context.check(context.library.api.linear_apply(context.handle, h, x.typed(Float.self), Int32(tokens),
                                                            y.typed(Float.self), accumulate ? 1 : 0),
                          "linear \(rows)×\(columns) on \(tokens) token(s)")
    }

    /// Device bytes one application reads for the weights (codes, params, bias).
    public var weightBytes: Int {
        guard let handle else { return 0 }
        return Int(context.library.api.linear_weight_bytes(handle))
    }

    /// Mean seconds per application on `tokens` tokens, timed with CUDA events over `iterations`
    /// applications after a warm-up: `call` as `apply` runs (activation preparation and stream
    /// launches included), `kernel` for the GEMV/GEMM kernel alone (a CUDA graph of back-to-back
    /// launches on prepared activations, as in the model's decode graph).
    ///
    /// Launches cycle through `copies` device copies of the weights, as many as hold `footprint`
    /// bytes: pass `coldFootprint` to time reads from HBM as a decode step through a whole
    /// model does, 0 for one copy (which stays in L2 when it fits: hot timings).
    public func time(tokens: Int, iterations: Int, footprint: Int = 0)
        throws(CUDAError) -> (call: Double, kernel: Double, copies: Int) {
        var call = 0.0, kernel = 0.0
        var copies: Int32 = 0
        let h = try live()
        try context.check(context.library.api.linear_time(context.handle, h, Int32(tokens), Int32(iterations),
                                                          Int64(footprint), &call, &kernel, &copies),
                          "timing of a \(rows)×\(columns) linear")
        return (call, kernel, Int(copies))
    }

    /// A weight footprint of twice the device's L2: `time(…, footprint:)` with it reads every
    /// launch's weights from device memory.
    public var coldFootprint: Int { 2 * context.device.l2CacheBytes }

    /// Hands the device object to a model (which frees it).
    func release() throws(CUDAError) -> OpaquePointer {
        let h = try live()
        handle = nil
        return h
    }

    private func live() throws(CUDAError) -> OpaquePointer {
        guard let handle else { throw CUDAError("this linear was moved into a GPU model") }
        return handle
    }
}

/// Calls `body` with a pointer to `values`' storage, or nil.
func withOptionalPointer<R>(_ values: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let values else { return body(nil) }
    return values.withUnsafeBufferPointer { body($0.baseAddress) }
}
