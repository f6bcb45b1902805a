import Foundation
import SlimCUDA
import SlimRuntime

/// Speed of the packed GEMV at LLaMA-7B shapes next to the device-to-device copy bandwidth
/// measured in the same run (issue target: ≥ 70 % of it), plus the small-batch GEMM and this
/// backend's fp16 dense GEMV on the same shapes. Reported as SPEED lines; they never fail the run.
///
/// Every rate is *cold*: launches cycle through copies of the weights that together hold twice
/// the L2 (`CUDALinear.coldFootprint`), so each reads its matrix from HBM as a decode step through
/// a model does. A 2-bit 4096×4096 matrix is 4.7 MB and stays in a 50 MB L2 when launched back to
/// back; that hot time is printed beside it but is not the number to compare.
struct SpeedChecks {
    let context: CUDAContext
    let report: Report

    static let shapes = [(4096, 4096), (11008, 4096), (4096, 11008)]

    /// A packed matrix of the synthetic LLaMA-7B mix at `bits` (groups of 128).
    static func layout(rows: Int, columns: Int, bits: Int) -> GPUPackedLayout {
        let mix = SyntheticModel.bitMix(groups: columns / 128, bits: bits, seed: UInt64(rows ^ columns))
        return GPUPackedLayout.random(rows: rows, columns: columns, groupSize: 128, bits: mix, weightStd: 0.02,
                                      seed: UInt64(bits))
    }

    /// A LLaMA-7B decode step's attention (32 heads of 128) at 512 and 2048 positions: fp32 KV
    /// cache split over the keys as the model runs it and unsplit (SLIM_CUDA_ATTN_SPLITS=1: one
    /// query per head leaves the grid at 32 blocks on a GPU of 132 SMs), and the 16-bit caches
    /// (`--kv-cache f16|bf16`, half the bytes). Cold: the launches cycle through caches that together
    /// exceed 2 × L2, as the layers of a model do.
    func attention(copy: Double) throws {
        let unsplit = try TuningChecks.context(libraryPath: context.library.path, ["SLIM_CUDA_ATTN_SPLITS": 1])
        let heads = 32, d = 128, kvDim = heads * d
        for positions in [512, 2048] {
            func layerBytes(_ kvCache: KVCacheType) -> Int { 2 * kvCache.byteSize * positions * kvDim }
            func time<KV>(_ ctx: CUDAContext, _ kv: KV.Type, _ kvCache: KVCacheType) throws -> (seconds: Double, splits: Int) {
                let layerBytes = layerBytes(kvCache)
                let caches = max(2, (2 * Int(ctx.device.l2CacheBytes) + layerBytes - 1) / layerBytes + 1)
                var rng = Random(seed: UInt64(positions))
                let q = try CUDABuffer(context: ctx, values: rng.values(kvDim, scale: 1))
                let keys = try CUDABuffer<KV>(context: ctx, count: caches * positions * kvDim)
                let values = try CUDABuffer<KV>(context: ctx, count: caches * positions * kvDim)
                // Small finite values: 2^-7 as fp32; pairs (0, 1) as fp16, (0, 2^-7) as bf16.
                try keys.fill(bitPattern: 0x3C00_0000)
                try values.fill(bitPattern: 0x3C00_0000)
                let out = try CUDABuffer<Float>(context: ctx, count: kvDim)
                return try ctx.attentionTime(q: q, keys: keys, values: values, kvCache: kvCache,
                                             cacheStride: positions * kvDim, caches: caches, out: out, rows: 1,
                                             start: positions - 1, heads: heads, kvHeads: heads, headDim: d,
                                             iterations: 50)
            }
            let split = try time(context, Float.self, .f32), whole = try time(unsplit, Float.self, .f32)
            let half = try time(context, UInt16.self, .f16), brain = try time(context, UInt16.self, .bf16)
            let rate = Double(layerBytes(.f32)) / split.seconds, halfRate = Double(layerBytes(.f16)) / half.seconds
            print(String(format: "SPEED attention decode 32x128 heads, %4d positions: %7.2f µs = %5.0f GB/s = %3.0f%% of copy "
                         + "(fp32 cache, %d key splits, cold); unsplit %7.2f µs (%.1f× slower); "
                         + "fp16 cache %7.2f µs = %5.0f GB/s (%.2f× the fp32 time); bf16 cache %7.2f µs (%.2f×)",
                         positions, split.seconds * 1e6, rate / 1e9, 100 * rate / copy, split.splits,
                         whole.seconds * 1e6, whole.seconds / split.seconds, half.seconds * 1e6, halfRate / 1e9,
                         half.seconds / split.seconds, brain.seconds * 1e6, brain.seconds / split.seconds))
        }
    }

    func run() {
        report.run("speed") {
            let copy = try context.copyBandwidth(bytes: 512 << 20, iterations: 20)
            print(String(format: "SPEED copy D2D: %.0f GB/s (512 MiB copies, read + write bytes)", copy / 1e9))
            for bits in [2, 3] {
                for (rows, columns) in Self.shapes {
                    let linear = try CUDALinear.packed(Self.layout(rows: rows, columns: columns, bits: bits),
                                                       context: context)
                    let bytes = Double(linear.weightBytes + 4 * columns)   // weights + x, once
                    let cold = try linear.time(tokens: 1, iterations: 200, footprint: linear.coldFootprint)
                    let hot = try linear.time(tokens: 1, iterations: 200)
                    let rate = bytes / cold.kernel
                    print(String(format: "SPEED gemv %5dx%-5d %d-bit mix: kernel %6.2f µs = %5.0f GB/s = %3.0f%% of copy "
                                 + "(target ≥ 70%%; cold, %d copies); per call incl. activation prep %6.2f µs; "
                                 + "L2-hot kernel %6.2f µs",
                                 rows, columns, bits, cold.kernel * 1e6, rate / 1e9, 100 * rate / copy, cold.copies,
                                 cold.call * 1e6, hot.kernel * 1e6))
                    for tokens in [4, 16, 64] {
                        let t = try linear.time(tokens: tokens, iterations: 50, footprint: linear.coldFootprint).kernel
                        print(String(format: "SPEED gemm %5dx%-5d %d-bit mix T=%-3d: kernel %7.2f µs, %5.1f TFLOP/s, %5.0f GB/s",
                                     rows, columns, bits, tokens, t * 1e6, 2 * Double(rows * columns * tokens) / t / 1e12,
                                     bytes / t / 1e9))
                    }
                }
            }
            try attention(copy: copy)
            for (rows, columns) in Self.shapes {
                var rng = Random(seed: UInt64(rows))
                let halves = (0..<(rows * columns)).map { _ in UInt16(truncatingIfNeeded: rng.next() & 0x3BFF) }
                let linear = try CUDALinear.dense(.f16(halves), rows: rows, columns: columns, context: context)
                let cold = try linear.time(tokens: 1, iterations: 200, footprint: linear.coldFootprint)
                let rate = Double(2 * rows * columns + 4 * columns) / cold.kernel
                print(String(format: "SPEED dense fp16 gemv %5dx%-5d (this backend): kernel %6.2f µs = %5.0f GB/s = %3.0f%% of copy "
                             + "(cold, %d copies)",
                             rows, columns, cold.kernel * 1e6, rate / 1e9, 100 * rate / copy, cold.copies))
            }
        }
    }
}
