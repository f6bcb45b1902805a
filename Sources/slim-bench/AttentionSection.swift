import Foundation
import SlimKernels
import SlimRuntime

/// Decode attention (one query row: a KV-cache step) per layer call, fp32 vs fp16 cache (and
/// bf16, the same bytes as fp16: its time and speed relative to fp16), at
/// SmolLM2-135M and LLaMA-7B shapes with 512 and 2048 cached positions: µs per call, GB/s of
/// cache bytes read, that as a fraction of the read bandwidth measured in the same run, and the
/// speedup over the per-head baseline (each query head's GEMV over its strided keys, softmax and
/// weighted row sum, heads spread over the threads: the runtime's decode path until the chunked
/// kernel). Each call reads a different copy of the cache, enough copies to exceed the L3, as the
/// layers of a decode step do.
struct AttentionSection {
    let threads: Int
    let quick: Bool

    func run() {
        print("== decode attention: fp32 vs fp16 (and bf16) KV cache, \(threads) thread(s)")
        let bandwidth = PackedSection.readBandwidth(threads: threads, repetitions: quick ? 3 : 5)
        print(String(format: "measured read bandwidth: %.2f GB/s (512 MiB, %d threads)", bandwidth / 1e9, threads))
        print(pad("shape", 26) + pad("positions", 10) + pad("f32 µs", 9) + pad("GB/s", 7) + pad("of bw", 7)
              + pad("vs head", 8) + pad("f16 µs", 9) + pad("GB/s", 7) + pad("of bw", 7) + pad("vs head", 8) + pad("f16 vs f32", 11) + pad("bf16 µs", 9) + "bf16 vs f16")
        let shapes: [(name: String, heads: Int, kvHeads: Int, headDim: Int)] =
            quick ? [("SmolLM2-135M 9/3×64", 9, 3, 64)] : [("SmolLM2-135M 9/3×64", 9, 3, 64), ("LLaMA-7B 32/32×128", 32, 32, 128)]
        for shape in shapes {
            for positions in quick ? [2048] : [512, 2048] {
                let attention = CausalAttention(heads: shape.heads, kvHeads: shape.kvHeads, headDim: shape.headDim)
                let kvDim = shape.kvHeads * shape.headDim, qDim = shape.heads * shape.headDim
                let elements = positions * kvDim
                let copies = max(2, (96 << 20) / (2 * elements * 4) + 1)  // > 96 MiB of fp32 caches
                var fp32 = [Float](repeating: 0, count: 2 * elements)
                for i in 0..<fp32.count { fp32[i] = Float((i &* 7919) % 2001) / 1000 - 1 }
                var fp16 = [UInt16](repeating: 0, count: fp32.count)
                Kernels.convertF32ToF16(fp32, &fp16, count: fp32.count)
                var bf16 = [UInt16](repeating: 0, count: fp32.count)
                Kernels.convertF32ToBF16(fp32, &bf16, count: fp32.count)
                // Distinct buffers: `Array(repeating:count:)` of an array would share one (copy-on-write).
                let cache32 = (0..<copies).map { _ in fp32.withUnsafeBufferPointer { Array($0) } }
                let cache16 = (0..<copies).map { _ in fp16.withUnsafeBufferPointer { Array($0) } }
                let cacheB = (0..<copies).map { _ in bf16.withUnsafeBufferPointer { Array($0) } }
                let q = (0..<qDim).map { Float(($0 * 31) % 997) / 997 - 0.5 }
                var out = [Float](repeating: 0, count: qDim)
                func time<T>(_ caches: [[T]], _ format: StorageFormat, perHead: Bool = false) -> Double {
                    bestSecondsPerCall(quick: quick) {
                        for cache in caches {
                            cache.withUnsafeBytes { raw in
                                let keys = raw.baseAddress!, values = raw.baseAddress! + elements * format.byteSize
                                if perHead {
                                    PerHeadDecode(attention: attention).run(q: q, keys: keys, values: values, format: format,
                                                                            out: &out, positions: positions, threads: threads)
                                } else {
                                    attention.run(q: q, keys: keys, values: values, format: format, out: &out, rows: 1,
                                                  start: positions - 1, threads: threads)
                                }
                            }
                        }
                    } / Double(caches.count)
                }
                let t32 = time(cache32, .f32), t16 = time(cache16, .f16), tB = time(cacheB, .bf16)
                let h32 = time(cache32, .f32, perHead: true), h16 = time(cache16, .f16, perHead: true)
                func cell(_ seconds: Double, _ width: Int, baseline: Double) -> String {
                    let rate = Double(2 * elements * width) / seconds
                    return pad(String(format: "%.1f", seconds * 1e6), 9) + pad(String(format: "%.1f", rate / 1e9), 7)
                        + pad(String(format: "%.0f%%", 100 * rate / bandwidth), 7) + pad(String(format: "%.2f×", baseline / seconds), 8)
                }
                print(pad(shape.name, 26) + pad("\(positions)", 10) + cell(t32, 4, baseline: h32) + cell(t16, 2, baseline: h16)
                      + pad(String(format: "%.2f×", t32 / t16), 11) + pad(String(format: "%.1f", tB * 1e6), 9)
                      + String(format: "%.2f×", t16 / tB))
            }
        }
        print()
    }
}

/// The baseline: one query row's attention head by head, each a GEMV over the head's keys
/// (strided by the KV width), softmax and a weighted row sum of its values, heads spread over
/// the threads.
private struct PerHeadDecode {
    let attention: CausalAttention

    private struct Pointers: @unchecked Sendable {
        let q: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer
        let out: UnsafeMutablePointer<Float>, scores: UnsafeMutablePointer<Float>
    }

    func run(q: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer, format: StorageFormat,
             out: UnsafeMutablePointer<Float>, positions: Int, threads: Int) {
        let a = attention
        let kvDim = a.kvHeads * a.headDim, group = a.heads / a.kvHeads
        let scores = UnsafeMutablePointer<Float>.allocate(capacity: a.heads * positions)
        defer { scores.deallocate() }
        let p = Pointers(q: q, keys: keys, values: values, out: out, scores: scores)
        Kernels.parallelItems(workers: threads, items: a.heads) { _, h in
            let offset = h / group * a.headDim * format.byteSize
            let s = p.scores + h * positions
            Kernels.gemv(m: positions, k: a.headDim, a: p.keys + offset, format: format, lda: kvDim,
                         x: p.q + h * a.headDim, y: s, threads: 1)
            Kernels.scale(s, by: a.scale, count: positions)
            Kernels.softmax(s, count: positions)
            Kernels.weightedRowSum(s, count: positions, rows: p.values + offset, format: format, ld: kvDim,
                                   width: a.headDim, out: p.out + h * a.headDim)
        }
    }
}
