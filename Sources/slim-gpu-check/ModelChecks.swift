import Foundation
import SlimCUDA
import SlimModel
import SlimRuntime

/// A whole model on the GPU against SlimRuntime on the CPU (plain or slim-packed checkpoint):
/// the logits of a window (prefilled in several blocks), the logits of KV-cache decode steps,
/// and the window's NLLs. Each KV-cache type against the CPU runtime with the same cache type:
/// with `--kv-cache f16|bf16` both round the same fp32 keys and values to the 16-bit type.
struct ModelChecks {
    let context: CUDAContext
    let report: Report

    func run(path: String) {
        for kvCache in KVCacheType.allCases { run(path: path, kvCache: kvCache) }
    }

    /// Tolerances: logits relative to the largest, and the window's mean NLL relative to itself
    /// (≈ the relative PPL error divided by the mean NLL). Random tokens on these tiny models
    /// score 4 to 30 nats each, so a PPL bound would grow with the NLL. An fp16 cache magnifies
    /// the fp32 rounding differences between GPU and CPU keys: near a tie one becomes a one-ulp
    /// (2⁻¹¹) difference of the cached value. Measured on the emulator: fp32 logits ≤ 1.2e-6 and
    /// NLL ≤ 3e-8; fp16 logits ≤ 9.6e-4 (stories260K-slim2: random tokens, 19 nats each) and NLL
    /// ≤ 5e-6. bf16's ulp is 8× fp16's (2⁻⁸): a tie broken differently moves the value 8× as
    /// far, so its bounds are 2× fp16's. Measured on the emulator: logits ≤ 6.1e-4, NLL ≤ 7.7e-7;
    /// a cache that truncates instead of rounding gives 2.3e-2 and 2.5e-4, and fails.
    static func tolerances(_ kvCache: KVCacheType) -> (logits: Double, nll: Double) {
        switch kvCache {
        case .f32: (1e-3, 1e-5)
        case .f16: (5e-3, 5e-5)
        case .bf16: (1e-2, 1e-4)
        }
    }

    func run(path: String, kvCache: KVCacheType) {
        let name = (path as NSString).lastPathComponent + (kvCache == .f32 ? "" : " (\(kvCache) KV cache)")
        let tolerance = Self.tolerances(kvCache)
        report.run("model \(name)") {
            let loaded = try LoadedModel(path: path)
            let cpu = LlamaModel(weights: try LlamaWeights(model: loaded))
            cpu.kvCacheType = kvCache
            let vocab = loaded.config.vocabSize
            let window = 100, prefix = 60
            // Blocks of 48 rows: the window's prefill crosses block boundaries through the cache.
            let gpu = try CUDAModel(context: context, model: loaded, capacity: window, maxTokens: 48, kvCache: kvCache)
            var rng = Random(seed: 11)
            let tokens = (0..<window).map { _ in Int(rng.next() % UInt64(vocab)) }
            let want = try cpu.forward(tokens, logits: .all).map(Double.init)
            let scale = want.map { _ in want.reduce(0) { max($0, abs($1)) } }

            let got = try gpu.forward(tokens, logits: .all)
            report.compare("model \(name): logits of a \(window)-token window", got: got, want: want, scale: scale,
                           tolerance: tolerance.logits, guarded: false) { "[position \($0 / vocab), token \($0 % vocab)]" }

            // Decode steps (the CUDA-graph path) against the CPU's window logits at the same positions.
            gpu.reset()
            var decoded: [Float] = try gpu.forward(Array(tokens.prefix(prefix)), logits: .last)
            for t in prefix..<window { decoded += try gpu.forward([tokens[t]], logits: .last) }
            let stepWant = Array(want[((prefix - 1) * vocab)..<(window * vocab)])
            report.compare("model \(name): prefill \(prefix) + \(window - prefix) decode steps", got: decoded, want: stepWant,
                           scale: Array(scale.prefix(stepWant.count)), tolerance: tolerance.logits, guarded: false) {
                "[position \(prefix - 1 + $0 / vocab), token \($0 % vocab)]"
            }

            let nllWant = try cpu.negativeLogLikelihoods(tokens)
            let nllGot = try gpu.negativeLogLikelihoods(tokens)
            let meanWant = nllWant.reduce(0, +) / Double(nllWant.count), meanGot = nllGot.reduce(0, +) / Double(nllGot.count)
            let relative = abs(meanGot - meanWant) / abs(meanWant)
            let detail = String(format: "window PPL GPU %.6f vs CPU %.6f; mean NLL %.6f vs %.6f (relative %.2e, tolerance %.0e)",
                                exp(meanGot), exp(meanWant), meanGot, meanWant, relative, tolerance.nll)
            if relative <= tolerance.nll, nllGot.count == nllWant.count { report.pass("model \(name): NLL", detail) } else {
                report.fail("model \(name): NLL", detail)
            }
            print("     model \(name): \(loaded.config.numHiddenLayers) layers, GPU memory \(gpu.deviceBytes / 1_048_576) MiB")
        }
    }
}
