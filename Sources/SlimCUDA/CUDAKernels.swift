// The decoder kernels on device buffers, one call each: what `CUDAModel` runs, exposed so that
// slim-gpu-check can compare every kernel with a CPU reference.

import CSlimCUDA
import SlimRuntime

extension CUDAContext {
    /// out[r] = x[r] · 1/√(mean(x[r]²) + eps) · weight, for `rows` rows of `n`.
    public func rmsNorm(x: CUDABuffer<Float>, weight: CUDABuffer<Float>, out: CUDABuffer<Float>, rows: Int, n: Int,
                        eps: Float) throws(CUDAError) {
        precondition(x.count >= rows * n && out.count >= rows * n && weight.count >= n, "rmsNorm: buffers too small")
        try check(library.api.rmsnorm(handle, x.typed(Float.self), weight.typed(Float.self), out.typed(Float.self),
                                      Int32(rows), Int32(n), eps), "rmsnorm")
    }

    /// Rotates `heads` heads of `headDim` in each of `rows` rows (row r at position start + r,
    /// rows `rowStride` apart) in place, with tables `cos`/`sin` [positions × headDim/2].
    public func rope(_ x: CUDABuffer<Float>, rows: Int, rowStride: Int, heads: Int, headDim: Int,
                     cos: CUDABuffer<Float>, sin: CUDABuffer<Float>, start: Int) throws(CUDAError) {
        precondition(x.count >= rows * rowStride && cos.count >= (start + rows) * headDim / 2
                     && sin.count >= (start + rows) * headDim / 2, "rope: buffers too small")
        try check(library.api.rope(handle, x.typed(Float.self), Int32(rows), Int32(rowStride), Int32(heads),
                                   Int32(headDim), cos.typed(Float.self), sin.typed(Float.self), Int32(start)), "rope")
    }

    /// Rounds `rows` rows of `width` fp32 values into `cache` (elements of `kvCache`: `Float`, or
    /// the `UInt16` bits of fp16/bf16 values) at rows start … start + rows − 1, as the model
    /// stores keys and values; the cache's other rows are left as they are.
    public func storeKV<KV>(_ source: CUDABuffer<Float>, rows: Int, width: Int, start: Int, into cache: CUDABuffer<KV>,
                            kvCache: KVCacheType) throws(CUDAError) {
        precondition(MemoryLayout<KV>.stride == kvCache.byteSize, "storeKV: \(KV.self) cache elements are not \(kvCache)")
        precondition(source.count >= rows * width && cache.count >= (start + rows) * width, "storeKV: buffers too small")
        try check(library.api.store_kv(handle, source.typed(Float.self), Int32(rows), Int32(width), Int32(start),
                                       cache.pointer, kvCache.dtype), "store_kv")
    }

    /// out = silu(gate) · up, element-wise.
    public func siluMul(gate: CUDABuffer<Float>, up: CUDABuffer<Float>, out: CUDABuffer<Float>, count: Int) throws(CUDAError) {
        precondition(gate.count >= count && up.count >= count && out.count >= count, "siluMul: buffers too small")
        try check(library.api.silu_mul(handle, gate.typed(Float.self), up.typed(Float.self), out.typed(Float.self),
                                       Int64(count)), "silu_mul")
    }

    /// Causal GQA attention of `rows` query rows at positions start … start + rows − 1 over
    /// keys/values [(start + rows) × kvHeads·headDim] of `kvCache` elements (`Float`, or the
    /// `UInt16` bits of fp16 values); q and out are [rows × heads·headDim].
    public func attention<KV>(q: CUDABuffer<Float>, keys: CUDABuffer<KV>, values: CUDABuffer<KV>,
                              kvCache: KVCacheType = .f32, out: CUDABuffer<Float>, rows: Int, start: Int, heads: Int,
                              kvHeads: Int, headDim: Int) throws(CUDAError) {
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        precondition(MemoryLayout<KV>.stride == kvCache.byteSize, "attention: \(KV.self) cache elements are not \(kvCache)")
        precondition(q.count >= rows * qDim && out.count >= rows * qDim && keys.count >= (start + rows) * kvDim
                     && values.count >= (start + rows) * kvDim, "attention: buffers too small")
        try check(library.api.attention(handle, q.typed(Float.self), keys.pointer, values.pointer, kvCache.dtype,
                                        out.typed(Float.self), Int32(rows), Int32(start), Int32(heads), Int32(kvHeads),
                                        Int32(headDim)), "attention")
    }

    /// Mean seconds per attention launch of `rows` rows at positions `start`… (key splits and
    /// their combination included), cycling through `caches` K/V caches `cacheStride` elements
    /// apart in `keys`/`values` (more bytes than the L2 holds: cold-cache timing), and the number
    /// of key splits used.
    public func attentionTime<KV>(q: CUDABuffer<Float>, keys: CUDABuffer<KV>, values: CUDABuffer<KV>,
                                  kvCache: KVCacheType = .f32, cacheStride: Int, caches: Int, out: CUDABuffer<Float>,
                                  rows: Int, start: Int, heads: Int, kvHeads: Int, headDim: Int,
                                  iterations: Int) throws(CUDAError) -> (seconds: Double, splits: Int) {
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        precondition(MemoryLayout<KV>.stride == kvCache.byteSize, "attentionTime: \(KV.self) cache elements are not \(kvCache)")
        precondition(caches >= 1 && q.count >= rows * qDim && out.count >= rows * qDim
                     && keys.count >= (caches - 1) * cacheStride + (start + rows) * kvDim
                     && values.count >= (caches - 1) * cacheStride + (start + rows) * kvDim, "attentionTime: buffers too small")
        var seconds = 0.0, splits: Int32 = 0
        try check(library.api.attention_time(handle, q.typed(Float.self), keys.pointer, values.pointer, kvCache.dtype,
                                             Int64(cacheStride), Int32(caches), out.typed(Float.self), Int32(rows),
                                             Int32(start), Int32(heads), Int32(kvHeads), Int32(headDim), Int32(iterations),
                                             &seconds, &splits), "attention timing")
        return (seconds, Int(splits))
    }

    /// out[r] = −log softmax(logits[r])[targets[r]] in fp64, for `rows` rows of `vocab`.
    public func negativeLogLikelihoods(logits: CUDABuffer<Float>, targets: CUDABuffer<Int32>, rows: Int, vocab: Int,
                                       out: CUDABuffer<Double>) throws(CUDAError) {
        precondition(logits.count >= rows * vocab && targets.count >= rows && out.count >= rows, "nll: buffers too small")
        try check(library.api.nll(handle, logits.typed(Float.self), targets.typed(Int32.self), Int32(rows), Int32(vocab),
                                  out.typed(Double.self)), "nll")
    }
}
