import Foundation
import SlimCUDA
import SlimModel
import SlimRuntime

/// A whole model on the GPU against SlimRuntime on the CPU (plain or slim-packed checkpoint):
/// the logits of a window (prefilled in several blocks), the logits of KV-cache decode steps,
/// and the window's NLLs. With an fp16 KV cache (`--kv-cache f16`) the GPU no longer computes
/// the CPU's values: its logits and PPL get the looser bounds of fp16 keys and values, and its
/// decode steps must still match its own window logits.
struct ModelChecks {
    let context: CUDAContext
    let report: Report

    func run(path: String) {
        for kvCache in CUDAKVCache.allCases { run(path: path, kvCache: kvCache) }
    }

    /// Tolerances: logits relative to the largest, and the window's mean NLL relative to itself
    /// (≈ the relative PPL error divided by the mean NLL). Random tokens on these tiny models
    /// score 4 to 30 nats each, so a PPL bound would grow with the NLL; fp16 keys and values carry
    /// a 2⁻¹¹ relative rounding into every score. Measured on the emulator: fp32 ≤ 3e-8, fp16
    /// ≤ 2.5e-5 (tiny-llama, whose PPL moves 7e-4 at 30 nats per token).
    static func tolerances(_ kvCache: CUDAKVCache) -> (logits: Double, nll: Double) {
        kvCache == .f32 ? (1e-3, 1e-5) : (1e-2, 1e-4)
    }

    func run(path: String, kvCache: CUDAKVCache) {
        let name = (path as NSString).lastPathComponent + (kvCache == .f32 ? "" : " (\(kvCache) KV cache)")
        let tolerance = Self.tolerances(kvCache)
        report.run("model \(name)") {
            let loaded = try LoadedModel(path: path)
            let cpu = LlamaModel(weights: try LlamaWeights(model: loaded))
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

            // Decode steps (the CUDA-graph path) against the window logits at the same positions:
            // the CPU's, or with an fp16 cache the GPU's own (the same cached values).
            gpu.reset()
            var decoded: [Float] = try gpu.forward(Array(tokens.prefix(prefix)), logits: .last)
            for t in prefix..<window { decoded += try gpu.forward([tokens[t]], logits: .last) }
            let windowWant = kvCache == .f32 ? want : got.map(Double.init)
            let stepWant = Array(windowWant[((prefix - 1) * vocab)..<(window * vocab)])
            report.compare("model \(name): prefill \(prefix) + \(window - prefix) decode steps", got: decoded, want: stepWant,
                           scale: Array(scale.prefix(stepWant.count)), tolerance: 1e-3, guarded: false) {
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
