import Dispatch
import Foundation
import SlimModel
import SlimRuntime

/// fp32 whole-model throughput of our runtime next to PyTorch CPU (transformers) on the same
/// machine, same run, same thread count:
/// - prefill: the eval-ppl workload, one forward over a window plus scoring every next-token
///   position (`LlamaModel.negativeLogLikelihoods`, what `RuntimeScorer` calls), at ctx 512 and
///   2048; tokens/s = ctx / seconds;
/// - decode: single-token KV-cache steps after a 512-token prompt (prefill not timed);
///   tokens/s = steps / seconds.
/// Each side reports its best of `repetitions` after a warm-up.
struct ModelSection {
    /// Model directory (or GGUF file); nil: SLIM_SMOLLM2_DIR, else the fixture-cache default.
    let modelPath: String?
    let threads: Int
    let python: String
    let scriptDir: String
    let quick: Bool

    var contexts: [Int] { quick ? [512] : [512, 2048] }
    var repetitions: Int { quick ? 2 : 3 }
    let decodeContext = 512
    var decodeSteps: Int { quick ? 16 : 64 }

    /// `--model`, else `SLIM_SMOLLM2_DIR`, else `~/.cache/slim-quant-fixtures/smollm2-135m-f32`
    /// (the directory scripts/prepare-fixtures.sh builds).
    var resolvedModelPath: String {
        if let modelPath { return modelPath }
        let env = ProcessInfo.processInfo.environment
        if let dir = env["SLIM_SMOLLM2_DIR"], !dir.isEmpty { return dir }
        let cache = env["SLIM_FIXTURE_CACHE"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory() + "/.cache/slim-quant-fixtures"
        return cache + "/smollm2-135m-f32"
    }

    func run() {
        let path = resolvedModelPath
        print("== fp32 model: prefill (forward + scoring of a window, the eval-ppl workload) and KV-cache decode, \(threads) thread(s)")
        guard FileManager.default.fileExists(atPath: path) else {
            print("note: no model at \(path): pass --model DIR, set SLIM_SMOLLM2_DIR, or run scripts/prepare-fixtures.sh\n")
            return
        }
        let model: LlamaModel
        do {
            let loaded = try LoadedModel(path: path)
            model = LlamaModel(weights: try LlamaWeights(model: loaded), threads: threads)
            print("model: \(path) (\(loaded.config.architecture), \(loaded.parameterCount) parameters)")
        } catch {
            print("note: cannot load \(path): \(error)\n")
            return
        }
        // The baseline runs first, in its own process, so both sides see the same machine state
        // apart from what other processes do; our model stays mapped meanwhile.
        let baseline = torchBaseline(path)
        print(pad("workload", 22) + pad("tokens", 8) + pad("slim tok/s", 12) + pad("torch tok/s", 13) + "ratio")
        for ctx in contexts {
            let ours = prefillSeconds(model, ctx: ctx)
            row("prefill ctx \(ctx)", ctx, Double(ctx) / ours, baseline["prefill \(ctx)"])
        }
        let ours = decodeSeconds(model)
        row("decode @\(decodeContext)", decodeSteps, Double(decodeSteps) / ours, baseline["decode \(decodeContext)"])
        print()
    }

    private func row(_ label: String, _ tokens: Int, _ ours: Double, _ ref: Double?) {
        let refText = ref.map { String(format: "%.1f", $0) } ?? "n/a"
        let ratio = ref.map { String(format: "%.2f×", ours / $0) } ?? "n/a"
        print(pad(label, 22) + pad("\(tokens)", 8) + pad(String(format: "%.1f", ours), 12) + pad(refText, 13) + ratio)
    }

    // MARK: - Our side

    /// Deterministic window ids (the same formula as torch_prefill.py): speed does not depend
    /// on the text.
    private func window(_ n: Int, vocab: Int) -> [Int] { (0..<n).map { ($0 * 7919 + 13) % vocab } }

    /// Best seconds for forward + scoring of one `ctx`-token window.
    private func prefillSeconds(_ model: LlamaModel, ctx: Int) -> Double {
        let tokens = window(ctx, vocab: model.config.vocabSize)
        return best {
            do {
                let nll = try model.negativeLogLikelihoods(tokens)
                precondition(nll.count == ctx - 1 && nll.allSatisfy(\.isFinite), "prefill produced bad NLLs")
            } catch {
                preconditionFailure("window ids are inside the vocabulary: \(error)")
            }
        }
    }

    /// Best seconds for `decodeSteps` greedy steps after a `decodeContext`-token prompt.
    func decodeSeconds(_ model: LlamaModel) -> Double {
        let prompt = window(decodeContext, vocab: model.config.vocabSize)
        let session: InferenceSession
        do {
            session = try InferenceSession(model: model, capacity: decodeContext + decodeSteps)
        } catch {
            preconditionFailure("KV cache of \(decodeContext + decodeSteps) positions: \(error)")
        }
        var best = Double.infinity
        for rep in 0...repetitions {  // rep 0 is the warm-up
            session.reset()
            do {
                var logits = try session.prefill(prompt, logits: .last)
                let start = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<decodeSteps { logits = try session.step(argmax(logits)) }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                if rep > 0 { best = min(best, seconds) }
            } catch {
                preconditionFailure("decode within the cache capacity: \(error)")
            }
        }
        return best
    }

    private func argmax(_ x: [Float]) -> Int {
        var best = 0
        for i in x.indices where x[i] > x[best] { best = i }
        return best
    }

    /// Best wall time of `body` over `repetitions` runs after one warm-up run.
    private func best(_ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }

    // MARK: - PyTorch baseline

    /// Tokens/s by "prefill CTX" / "decode CONTEXT" from scripts/bench/torch_prefill.py; empty
    /// (with a note) when the interpreter, torch or transformers is missing.
    private func torchBaseline(_ modelPath: String) -> [String: Double] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, scriptDir + "/torch_prefill.py", modelPath, String(threads), String(repetitions),
                       contexts.map(String.init).joined(separator: ","), String(decodeContext), String(decodeSteps)]
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch {
            print("note: cannot run \(python) for the PyTorch baseline: \(error); showing ours alone")
            return [:]
        }
        // Drain stderr concurrently: transformers' progress output could fill the pipe.
        let stderrText = Drained()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { stderrText.data = err.fileHandleForReading.readDataToEndOfFile() }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        let errData = stderrText.data
        p.waitUntilExit()

        var result: [String: Double] = [:]
        var info = ""
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let kind = obj["kind"] as? String else { continue }
            switch kind {
            case "info":
                info = "torch \(obj["torch"] ?? "?"), transformers \(obj["transformers"] ?? "?"), "
                    + "\(obj["threads"] ?? "?") thread(s), attention \(obj["attention"] ?? "?")"
            case "prefill":
                if let ctx = obj["ctx"] as? Int, let r = obj["tokens_per_second"] as? Double { result["prefill \(ctx)"] = r }
            case "decode":
                if let c = obj["context"] as? Int, let r = obj["tokens_per_second"] as? Double { result["decode \(c)"] = r }
            default: continue
            }
        }
        if result.isEmpty {
            let lastLine = String(decoding: errData, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            let why = p.terminationStatus == 3 ? "torch or transformers is missing in \(python)" : "\(python) exited \(p.terminationStatus)"
            print("note: PyTorch baseline unavailable (\(why)\(lastLine.isEmpty ? "" : ": " + lastLine)); showing ours alone")
        } else {
            print("baseline: PyTorch CPU (\(info)), measured in this run")
        }
        return result
    }
}

/// Bytes read by a background reader; `DispatchGroup.wait()` orders the write before the read.
private final class Drained: @unchecked Sendable {
    var data = Data()
}
