import Foundation
import SlimData
import SlimEval
import SlimCUDA
import SlimIO
import SlimKernels
import SlimModel
import SlimRuntime

/// `slim-quant eval-ppl`: perplexity of a model on a dataset under the paper or llama.cpp protocol.
struct EvalPPLCommand: SlimCommand {
    static let configuration = CommandConfiguration(
        name: "eval-ppl",
        abstract: "Measure perplexity on WikiText-2, PTB, C4 or a text file.",
        usage: "--model <dir|file.gguf> --dataset <wikitext2|ptb|c4|file> [options]",
        discussion: """
            --protocol paper (default) is the GPTQ / SliM-LLM evaluation: the dataset text built as
            their code builds it (WikiText-2 test rows joined with "\\n\\n", PTB sentences joined with
            " ", C4 "c4-new": first 1,100 validation documents, first 256 windows), tokenized once,
            non-overlapping windows of --ctx tokens (default 2048), every position scored,
            PPL = exp(mean of window mean NLLs).
            --protocol llamacpp is llama.cpp's `perplexity`: the raw file tokenized with BOS, windows
            of --ctx tokens (default 512) starting with BOS, the second half of each scored, printed
            as "PPL = x +/- y".
            Progress with the running PPL and an ETA goes to stderr; the result to stdout.
            --device cuda evaluates on an NVIDIA GPU (backend: scripts/build-cuda.sh): the same windows
            and scoring, with the model, KV cache and log-softmax on the device.
            """,
        examples: [
            "slim-quant eval-ppl --model ~/.cache/slim-quant-fixtures/smollm2-135m-f32 --dataset wikitext2",
            "slim-quant eval-ppl --model ../shared/models/stories260K --dataset wikitext2 --ctx 512 --max-windows 8 --json",
            "slim-quant eval-ppl --model model.gguf --dataset wiki.test.raw --protocol llamacpp",
            "slim-quant eval-ppl --model smollm2-slim-w2 --dataset wikitext2 --device cuda",
        ],
        options: [
            .option("model", short: "m", value: "<dir|file.gguf>", help: "Model directory or GGUF file."),
            .option("dataset", short: "d", value: "<name|file>", help: "wikitext2, ptb, c4, or a UTF-8 text file."),
            .option("split", value: "<train|validation|test>", help: "Dataset split (default: test; C4: validation)."),
            .option("data-dir", value: "<dir>", help: "Dataset directory (default: $SLIM_DATA_DIR, else ../shared/data)."),
            .option("protocol", value: "<paper|llamacpp>", help: "Evaluation protocol.", default: "paper"),
            .option("ctx", value: "<n>", help: "Window length in tokens (default: 2048 paper, 512 llamacpp)."),
            .option("max-windows", value: "<n>", help: "Evaluate only the first n windows."),
            .option("threads", short: "t", value: "<n>", help: "Worker threads.", default: "all cores"),
            .flag("json", help: "Print the result as JSON."),
            .flag("prefer-json", help: "Use tokenizer.json even when a tokenizer.model is present."),
        ] + DeviceSelection.options + [KVCacheType.option, CPUWeights.option, PackedActivations.option])

    let model: String
    let dataset: String
    let split: Split?
    let dataDir: String?
    let evalProtocol: PerplexityProtocol
    let ctx: Int
    let maxWindows: Int?
    let threads: Int
    let json: Bool
    let preferJSON: Bool
    let device: DeviceSelection
    let weights: CPUWeights
    let activations: PackedActivations
    let kvCache: KVCacheType

    init(_ args: ParsedArguments) throws(UsageError) {
        device = try DeviceSelection(args)
        weights = try CPUWeights(args, device: device.device)
        activations = try PackedActivations(args, device: device.device)
        kvCache = try KVCacheType(args)
        model = try args.required("model", "<dir|file.gguf>")
        dataset = try args.required("dataset", "<name|file>")
        split = args.isSet("split") ? try args.choice("split", default: Split.test) : nil
        dataDir = args.string("data-dir")
        evalProtocol = try args.choice("protocol", default: PerplexityProtocol.paper)
        ctx = try args.int("ctx", default: evalProtocol == .paper ? 2048 : 512, in: 2...1_048_576)
        maxWindows = args.isSet("max-windows") ? try args.int("max-windows", default: 0, in: 1...Int.max) : nil
        threads = try args.int("threads", default: Kernels.defaultThreads, in: 1...4096)
        json = args.has("json")
        preferJSON = args.has("prefer-json")
    }

    func validate() throws(UsageError) {
        if DatasetName(rawValue: dataset) == nil, split != nil {
            throw UsageError("'--split' applies only to a named dataset (wikitext2, ptb, c4)")
        }
    }

    func run(console: Console) throws {
        let loaded = try LoadedModel(path: model)
        let tokenizer = try loaded.tokenizer(preferJSON: preferJSON)
        let (text, label) = try datasetText(console: console)

        let t0 = DispatchTime.now().uptimeNanoseconds
        var tokens = tokenizer.encode(text, addSpecialTokens: true)
        if DatasetName(rawValue: dataset) == .c4, evalProtocol == .paper {
            tokens = TokenWindows.truncateC4Eval(tokens, contextLength: ctx)
        }
        let tokenizeSeconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        // llama.cpp substitutes BOS only when its tokenizer adds one.
        let addsBOS = tokenizer.bosTokenID != nil && tokenizer.encode("", addSpecialTokens: true).first == tokenizer.bosTokenID
        let evaluator = PerplexityEvaluator(protocol: evalProtocol, contextLength: ctx, maxWindows: maxWindows,
                                            bosTokenID: addsBOS ? tokenizer.bosTokenID : nil)
        let windows: Int
        do { windows = try evaluator.windows(of: tokens).count } catch {
            // Name the dataset: the evaluator only sees tokens.
            let source = DatasetName(rawValue: dataset) == nil ? dataset : label
            throw FileError(source, "\(error.message) (use a longer text or a smaller --ctx)")
        }
        console.log("eval-ppl: \(loaded.config.architecture) \(formatCount(loaded.parameterCount)) on \(label): "
                    + "\(tokens.count) tokens (tokenized in \(String(format: "%.2f", tokenizeSeconds)) s), "
                    + "\(windows) windows of \(ctx), protocol \(evalProtocol.rawValue), "
                    + (device.device == .cuda ? "GPU" : "\(threads) threads")
                    + (kvCache == .f32 ? "" : ", \(kvCache) KV cache"))
        if ctx > loaded.config.maxPositionEmbeddings {
            console.log("warning: --ctx \(ctx) exceeds the model's max_position_embeddings "
                        + "(\(loaded.config.maxPositionEmbeddings)); positions past it were not trained")
        }

        let scorer: any NextTokenScorer
        if device.device == .cuda {
            let context = try device.openContext(console: console)
            scorer = GPUScorer(model: try CUDAModel(context: context, model: loaded, capacity: ctx, kvCache: kvCache))
        } else {
            scorer = RuntimeScorer(model: try cpuModel(loaded, weights: weights, activations: activations, kvCache: kvCache, threads: threads))
        }
        let bar = ProgressBar(console: console, label: "eval-ppl", total: windows)
        let result = try evaluator.evaluate(tokens: tokens, model: scorer) { p in
            bar.update(p.windowsDone, detail: String(format: "ppl %.4f", p.runningPerplexity))
        }
        report(result, label: label, console: console)
    }

    /// The text to tokenize and its label. The paper protocol rebuilds the dataset as the
    /// reference code does; llama.cpp reads the raw file.
    private func datasetText(console: Console) throws -> (String, String) {
        guard let name = DatasetName(rawValue: dataset) else {
            return (try loadTextFile(path: dataset), (dataset as NSString).lastPathComponent)
        }
        let locator = DatasetLocator(dataDir: dataDir)
        let chosenSplit = split ?? name.defaultSplit(for: .eval)
        if evalProtocol == .llamacpp, name != .c4 {
            let (path, label) = try locator.locate(name, split: chosenSplit)
            return (try loadTextFile(path: path), label + " (raw file)")
        }
        let data = try locator.text(name, split: chosenSplit, protocol: .eval)
        for w in data.warnings { console.log("warning: \(w)") }
        return (data.text, data.label)
    }

    private func report(_ r: PerplexityResult, label: String, console: Console) {
        if json {
            var obj: JSONObject = [
                "model": .string(model), "dataset": .string(label), "protocol": .string(r.protocolName.rawValue),
                "ctx": .int(Int64(r.contextLength)), "windows": .int(Int64(r.windows)),
                "tokens": .int(Int64(r.tokensInStream)), "positions_scored": .int(Int64(r.positionsScored)),
                "ppl": .double(r.perplexity), "seconds": .double(r.seconds), "tokens_per_second": .double(r.tokensPerSecond),
            ]
            if let u = r.uncertainty { obj["ppl_uncertainty"] = .double(u) }
            console.print(JSON.object(obj).serialized(pretty: true))
            return
        }
        switch r.protocolName {
        case .paper:
            console.print(String(format: "%@: PPL = %.4f  (%d windows × %d tokens, paper protocol)", label, r.perplexity, r.windows, r.contextLength))
        case .llamacpp:
            console.print(String(format: "Final estimate: PPL = %.4f +/- %.5f  (%@, %d chunks × %d, llama.cpp protocol)",
                                 r.perplexity, r.uncertainty ?? .nan, label, r.windows, r.contextLength))
        }
        console.log(String(format: "eval-ppl: %.1f s, %.0f tokens/s", r.seconds, r.tokensPerSecond))
    }
}

/// Adapts the runtime to the evaluator: scores a window without materialising T × vocab logits.
struct RuntimeScorer: NextTokenScorer {
    let model: LlamaModel
    func negativeLogLikelihoods(window: [Int]) throws -> [Double] {
        try model.negativeLogLikelihoods(window)
    }
}

/// The GPU model as a scorer: log-softmax on the device, only the NLLs come back.
struct GPUScorer: NextTokenScorer {
    let model: CUDAModel
    func negativeLogLikelihoods(window: [Int]) throws -> [Double] {
        try model.negativeLogLikelihoods(window)
    }
}
