import Foundation
import SlimCUDA
import SlimModel
import SlimRuntime

/// A whole model on the GPU against SlimRuntime on the CPU (plain or slim-packed checkpoint):
/// the logits of a window (prefilled in several blocks), the logits of KV-cache decode steps,
/// and the window's NLLs.
struct ModelChecks {
    let context: CUDAContext
    let report: Report

    func run(path: String) {
        let name = (path as NSString).lastPathComponent
        report.run("model \(name)") {
            let loaded = try LoadedModel(path: path)
            let cpu = LlamaModel(weights: try LlamaWeights(model: loaded))
            let vocab = loaded.config.vocabSize
            let window = 100, prefix = 60
            // Blocks of 48 rows: the window's prefill crosses block boundaries through the cache.
            let gpu = try CUDAModel(context: context, model: loaded, capacity: window, maxTokens: 48)
            var rng = Random(seed: 11)
            let tokens = (0..<window).map { _ in Int(rng.next() % UInt64(vocab)) }
            let want = try cpu.forward(tokens, logits: .all).map(Double.init)
            let scale = want.map { _ in want.reduce(0) { max($0, abs($1)) } }

            let got = try gpu.forward(tokens, logits: .all)
            report.compare("model \(name): logits of a \(window)-token window", got: got, want: want, scale: scale,
                           tolerance: 1e-3, guarded: false) { "[position \($0 / vocab), token \($0 % vocab)]" }

            // Decode steps (the CUDA-graph path) against the window logits at the same positions.
            gpu.reset()
            var decoded: [Float] = try gpu.forward(Array(tokens.prefix(prefix)), logits: .last)
            for t in prefix..<window { decoded += try gpu.forward([tokens[t]], logits: .last) }
            let stepWant = Array(want[((prefix - 1) * vocab)..<(window * vocab)])
            report.compare("model \(name): prefill \(prefix) + \(window - prefix) decode steps", got: decoded, want: stepWant,
                           scale: Array(scale.prefix(stepWant.count)), tolerance: 1e-3, guarded: false) {
                "[position \(prefix - 1 + $0 / vocab), token \($0 % vocab)]"
            }

            let nllWant = try cpu.negativeLogLikelihoods(tokens)
            let nllGot = try gpu.negativeLogLikelihoods(tokens)
            let meanWant = nllWant.reduce(0, +) / Double(nllWant.count), meanGot = nllGot.reduce(0, +) / Double(nllGot.count)
            let relative = abs(exp(meanGot) - exp(meanWant)) / exp(meanWant)
            let detail = String(format: "window PPL GPU %.6f vs CPU %.6f (relative %.2e, tolerance 1e-4)", exp(meanGot),
                                exp(meanWant), relative)
            if relative <= 1e-4, nllGot.count == nllWant.count { report.pass("model \(name): NLL", detail) } else {
                report.fail("model \(name): NLL", detail)
            }
            print("     model \(name): \(loaded.config.numHiddenLayers) layers, GPU memory \(gpu.deviceBytes / 1_048_576) MiB")
        }
    }
}
