import Foundation
import SlimCUDA
import SlimKernels
import SlimModel
import SlimRuntime

/// RMSNorm, rotary embedding, SwiGLU, causal GQA attention and the NLL kernel against float64
/// references on random inputs, outputs NaN-poisoned with guard elements.
struct OpChecks {
    let context: CUDAContext
    let report: Report

    func run() {
        rmsNorm()
        rope()
        siluMul()
        attention()
        attention(kvCache: .f16)
        attention(kvCache: .bf16)
        storeKV()
        attentionTiming()
        nll()
    }

    private func poisoned(_ count: Int) throws -> CUDABuffer<Float> {
        let b = try CUDABuffer<Float>(context: context, count: count + Report.guardCount)
        try b.fill(bitPattern: Report.poison)
        return b
    }

    func rmsNorm() {
        for n in [64, 576, 4096, 11008] {
            report.run("rmsnorm n=\(n)") {
                var rng = Random(seed: UInt64(n))
                let rows = 5, eps: Float = 1e-5
                let x = rng.values(rows * n, scale: 3), w = rng.values(n)
                let out = try poisoned(rows * n)
                try context.rmsNorm(x: CUDABuffer(context: context, values: x), weight: CUDABuffer(context: context, values: w),
                                    out: out, rows: rows, n: n, eps: eps)
                var want = [Double](repeating: 0, count: rows * n)
                for r in 0..<rows {
                    var ss = 0.0
                    for i in 0..<n { ss += Double(x[r * n + i]) * Double(x[r * n + i]) }
                    let inv = 1 / (ss / Double(n) + Double(eps)).squareRoot()
                    for i in 0..<n { want[r * n + i] = Double(x[r * n + i]) * inv * Double(w[i]) }
                }
                report.compare("rmsnorm n=\(n)", got: try out.download(), want: want, scale: want.map { max(abs($0), 1e-3) },
                               tolerance: 1e-5) { "[row \($0 / n), \($0 % n)]" }
            }
        }
    }

    func rope() {
        let scaling = LlamaConfig.RopeScaling.llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                                     originalMaxPositionEmbeddings: 8192)
        for (heads, headDim, start, scaled) in [(4, 8, 0, false), (9, 64, 100, false), (32, 128, 3, true)] {
            let label = "rope heads=\(heads) d=\(headDim) start=\(start)\(scaled ? " llama3" : "")"
            report.run(label) {
                let rows = 7, stride = heads * headDim + 5, half = headDim / 2
                let rotary = RotaryEmbedding(headDim: headDim, theta: 500_000, scaling: scaled ? scaling : nil)
                var cosT: [Float] = [], sinT: [Float] = []
                for p in 0..<(start + rows) {
                    let (c, s) = rotary.cosSin(position: p)
                    cosT += c
                    sinT += s
                }
                var rng = Random(seed: UInt64(heads * headDim + start))
                let x = rng.values(rows * stride, scale: 2)
                let buffer = try CUDABuffer(context: context, values: x + [Float](repeating: Float(bitPattern: Report.poison),
                                                                                   count: Report.guardCount))
                try context.rope(buffer, rows: rows, rowStride: stride, heads: heads, headDim: headDim,
                                 cos: CUDABuffer(context: context, values: cosT), sin: CUDABuffer(context: context, values: sinT),
                                 start: start)
                var want = x.map(Double.init)
                for r in 0..<rows {
                    for h in 0..<heads {
                        for i in 0..<half {
                            let lo = r * stride + h * headDim + i, hi = lo + half
                            let c = Double(cosT[(start + r) * half + i]), s = Double(sinT[(start + r) * half + i])
                            want[lo] = Double(x[lo]) * c - Double(x[hi]) * s
                            want[hi] = Double(x[hi]) * c + Double(x[lo]) * s
                        }
                    }
                }
                report.compare(label, got: try buffer.download(), want: want, scale: x.map { _ in 2 }, tolerance: 1e-6) {
                    "[row \($0 / stride), \($0 % stride)]"
                }
            }
        }
    }

    func siluMul() {
        report.run("silu_mul") {
            var rng = Random(seed: 3)
            let n = 10_007
            let g = rng.values(n, scale: 8), u = rng.values(n, scale: 2)
            let out = try poisoned(n)
            try context.siluMul(gate: CUDABuffer(context: context, values: g), up: CUDABuffer(context: context, values: u),
                                out: out, count: n)
            let want = (0..<n).map { i in Double(g[i]) / (1 + Foundation.exp(-Double(g[i]))) * Double(u[i]) }
            report.compare("silu_mul", got: try out.download(), want: want, scale: want.map { max(abs($0), 1e-3) }, tolerance: 1e-5)
        }
    }

    /// (heads, kvHeads, headDim, rows, start). Decode steps (rows 1–4) are split over the keys
    /// when the grid is smaller than the GPU: long contexts (2047: LLaMA-7B's last position),
    /// contexts shorter than one tile per split, odd and non-multiple-of-4 head dims (scalar loads),
    /// and 12 (16-byte loads of 4 fp32 values, scalar loads of an fp16 cache).
    static let attentionCases = [(4, 4, 8, 1, 0), (4, 2, 64, 1, 37), (9, 3, 64, 17, 0), (9, 3, 64, 5, 100),
                                 (32, 8, 128, 1, 300), (8, 8, 128, 40, 10), (4, 1, 256, 3, 5), (32, 32, 128, 70, 0),
                                 (32, 32, 128, 1, 2047), (9, 3, 64, 1, 1000), (8, 4, 128, 4, 700), (2, 1, 6, 1, 90),
                                 (3, 3, 33, 2, 64), (4, 2, 12, 3, 50)]

    /// With a 16-bit cache the reference uses the 16-bit keys and values the kernel reads (the
    /// rounding is the cache's, not the kernel's): the same tolerance holds.
    func attention(cases: [(Int, Int, Int, Int, Int)] = OpChecks.attentionCases, kvCache: KVCacheType = .f32,
                   suffix: String = "") {
        for (heads, kvHeads, d, rows, start) in cases {
            let label = "attention heads=\(heads)/\(kvHeads) d=\(d) rows=\(rows) start=\(start)"
                + (kvCache == .f32 ? "" : " \(kvCache) cache") + suffix
            report.run(label) {
                var rng = Random(seed: UInt64(heads * 1000 + d + rows + start))
                let qDim = heads * d, kvDim = kvHeads * d, context_ = start + rows
                let q = rng.values(rows * qDim, scale: 2)
                var k = rng.values(context_ * kvDim, scale: 2), v = rng.values(context_ * kvDim)
                let out = try poisoned(rows * qDim)
                let qBuffer = try CUDABuffer(context: context, values: q)
                if kvCache != .f32 {
                    let format = kvCache.storage
                    let kh = k.map { Kernels.Reference.f32ToHalf($0, format) }
                    let vh = v.map { Kernels.Reference.f32ToHalf($0, format) }
                    k = kh.map { Kernels.Reference.halfToF32($0, format) }
                    v = vh.map { Kernels.Reference.halfToF32($0, format) }
                    try context.attention(q: qBuffer, keys: CUDABuffer(context: context, values: kh),
                                          values: CUDABuffer(context: context, values: vh), kvCache: kvCache, out: out,
                                          rows: rows, start: start, heads: heads, kvHeads: kvHeads, headDim: d)
                } else {
                    try context.attention(q: qBuffer, keys: CUDABuffer(context: context, values: k),
                                          values: CUDABuffer(context: context, values: v), out: out, rows: rows,
                                          start: start, heads: heads, kvHeads: kvHeads, headDim: d)
                }
                var want = [Double](repeating: 0, count: rows * qDim)
                let scale = Foundation.pow(Double(d), -0.5)
                for t in 0..<rows {
                    for h in 0..<heads {
                        let g = h / (heads / kvHeads), visible = start + t + 1
                        var scores = [Double](repeating: 0, count: visible)
                        for j in 0..<visible {
                            var s = 0.0
                            for i in 0..<d { s += Double(q[t * qDim + h * d + i]) * Double(k[j * kvDim + g * d + i]) }
                            scores[j] = s * scale
                        }
                        let m = scores.max()!
                        let e = scores.map { Foundation.exp($0 - m) }, sum = e.reduce(0, +)
                        for i in 0..<d {
                            var acc = 0.0
                            for j in 0..<visible { acc += e[j] / sum * Double(v[j * kvDim + g * d + i]) }
                            want[t * qDim + h * d + i] = acc
                        }
                    }
                }
                report.compare(label, got: try out.download(), want: want, scale: want.map { _ in 1 }, tolerance: 1e-5) {
                    "[row \($0 / qDim), head \(($0 % qDim) / d), \($0 % d)]"
                }
            }
        }
    }

    /// store_kv rounds fp32 rows into a 16-bit cache exactly as the CPU's cache conversion does,
    /// bit for bit: random values over many binades, ties of both parities, values that
    /// overflow the format, fp16 subnormals and underflow, ±0, ±∞ and NaN (payload only in the
    /// bits bf16 drops: it must stay NaN). Rows outside start … start + rows − 1 keep their bits.
    func storeKV() {
        for kvCache in [KVCacheType.f16, .bf16] {
            let label = "store_kv \(kvCache) cache"
            report.run(label) {
                let width = 67, rows = 5, start = 3, capacity = start + rows + 2
                var rng = Random(seed: kvCache == .f16 ? 16 : 17)
                let special: [UInt32] = [0x0000_0000, 0x8000_0000, 0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0x7F80_0001,
                                         0xFF80_1234, 0x3F80_8000, 0x3F81_8000, 0x3F80_8001, 0x3F80_1000, 0x3F80_3000,
                                         0x3F80_2000, 0x477F_F000, 0x477F_E000, 0x4780_0000, 0x7F7F_FFFF, 0xFF7F_8000,
                                         0x3380_0000, 0x3300_0000, 0x3300_0001, 0x3440_0000, 0x387F_C000, 0x0000_0001]
                var source = special.map { Float(bitPattern: $0) }
                while source.count < rows * width {
                    // Random sign, exponent 2^-30 … 2^30 and mantissa.
                    let bits = UInt32(truncatingIfNeeded: rng.next())
                    let exponent = UInt32(127 - 30 + Int(rng.next() % 61)) << 23
                    source.append(Float(bitPattern: (bits & 0x807F_FFFF) | exponent))
                }
                let format = kvCache.storage
                let guardBits: UInt16 = 0xABCD
                let cache = try CUDABuffer<UInt16>(context: context, values: [UInt16](repeating: guardBits,
                                                                                       count: capacity * width))
                try context.storeKV(CUDABuffer(context: context, values: source), rows: rows, width: width, start: start,
                                    into: cache, kvCache: kvCache)
                let got = try cache.download()
                var wrong: [String] = []
                for i in 0..<(capacity * width) {
                    let row = i / width, inside = row >= start && row < start + rows
                    let want = inside ? Kernels.Reference.f32ToHalf(source[i - start * width], format) : guardBits
                    let isNaN = Kernels.Reference.halfToF32(want, format).isNaN
                    let gotNaN = Kernels.Reference.halfToF32(got[i], format).isNaN
                    // Any NaN for a NaN (the payload is the device's), otherwise the same bits.
                    if inside && isNaN ? !gotNaN : got[i] != want {
                        let from = inside ? String(format: " from 0x%08X", source[i - start * width].bitPattern) : " (guard)"
                        wrong.append(String(format: "[row %d, %d]%@: 0x%04X, want 0x%04X", row, i % width, from, got[i], want))
                    }
                }
                if wrong.isEmpty {
                    report.pass(label, "\(rows * width) values (\(special.count) special) bit for bit as the CPU rounds them")
                } else {
                    report.fail(label, "\(wrong.count) elements differ, e.g. " + wrong.prefix(3).joined(separator: "; "))
                }
            }
        }
    }

    /// attention_time runs the model's launch path (a decode step with key splits on a GPU of more
    /// SMs than KV heads) over fp32, fp16 and bf16 caches, returns a positive time and leaves a finite
    /// output.
    func attentionTiming() {
        let heads = 8, d = 64, positions = 300, kvDim = heads * d
        func check<KV>(_ kvCache: KVCacheType, _ cache: [KV]) {
            let label = "attention_time \(kvCache) cache"
            report.run(label) {
                var rng = Random(seed: 7)
                let q = try CUDABuffer(context: context, values: rng.values(kvDim))
                let keys = try CUDABuffer(context: context, values: cache), values = try CUDABuffer(context: context, values: cache)
                let out = try poisoned(kvDim)
                let (seconds, splits) = try context.attentionTime(q: q, keys: keys, values: values, kvCache: kvCache,
                                                                  cacheStride: positions * kvDim, caches: 2, out: out, rows: 1,
                                                                  start: positions - 1, heads: heads, kvHeads: heads, headDim: d,
                                                                  iterations: 2)
                let got = try out.download().prefix(kvDim)
                if seconds > 0 && seconds.isFinite && splits > 1 && got.allSatisfy({ $0.isFinite }) {
                    report.pass(label, String(format: "%.1f µs, %d key splits", seconds * 1e6, splits))
                } else {
                    report.fail(label, "seconds \(seconds), splits \(splits), finite output \(got.allSatisfy { $0.isFinite })")
                }
            }
        }
        var rng = Random(seed: 8)
        let cache = rng.values(2 * positions * kvDim)
        check(.f32, cache)
        check(.f16, cache.map { Float16($0).bitPattern })
        check(.bf16, cache.map { Kernels.Reference.f32ToHalf($0, .bf16) })
    }

    func nll() {
        for vocab in [50, 32000, 49152] {
            report.run("nll vocab=\(vocab)") {
                var rng = Random(seed: UInt64(vocab))
                let rows = 7
                let logits = rng.values(rows * vocab, scale: 10)
                let targets = (0..<rows).map { _ in Int32(rng.next() % UInt64(vocab)) }
                let out = try CUDABuffer<Double>(context: context, count: rows)
                try context.negativeLogLikelihoods(logits: CUDABuffer(context: context, values: logits),
                                                   targets: CUDABuffer(context: context, values: targets), rows: rows,
                                                   vocab: vocab, out: out)
                let got = try out.download()
                var want = [Double](repeating: 0, count: rows)
                for r in 0..<rows {
                    let row = logits[(r * vocab)..<((r + 1) * vocab)].map(Double.init)
                    let m = row.max()!
                    want[r] = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) }) - row[Int(targets[r])]
                }
                report.compare("nll vocab=\(vocab)", got: got.map { Float($0) }, want: want, scale: want.map { max(abs($0), 1) },
                               tolerance: 1e-6, guarded: false) { "row \($0)" }
            }
        }
    }
}
