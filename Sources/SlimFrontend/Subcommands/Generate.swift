import Foundation
import SlimIO
import SlimCUDA
import SlimKernels
import SlimModel
import SlimRuntime
import SlimTokenizer

/// `slim-quant generate`: continue a prompt, streaming the text as it is produced.
struct GenerateCommand: SlimCommand {
    static let configuration = CommandConfiguration(
        name: "generate",
        abstract: "Generate text from a prompt (greedy by default), streaming tokens.",
        usage: "--model <dir|file.gguf> --prompt <text> [options]",
        discussion: """
            The prompt is tokenized with the model's tokenizer (BOS added when the tokenizer adds
            it), prefilled in one batch, and continued with the KV cache until --max-tokens, an
            end-of-sequence token or a full context window (--ctx, prompt plus new tokens; default
            the model's max_position_embeddings, as llama.cpp's n_ctx). Greedy decoding unless --temperature > 0; sampling is seeded and
            reproducible (--seed). Timing goes to stderr.
            --device cuda runs the resident GPU model (scripts/build-cuda.sh); sampling stays on the
            CPU, so the same --seed gives the same text on both devices up to logit rounding.
            """,
        examples: [
            "slim-quant generate --model ../shared/models/stories260K --prompt 'Once upon a time'",
            "slim-quant generate --model smollm2 --prompt 'The capital of France is' --max-tokens 32 --temperature 0.7 --seed 1",
            "slim-quant generate --model smollm2-slim-w2 --prompt 'Once upon a time' --device cuda",
        ],
        options: [
            .option("model", short: "m", value: "<dir|file.gguf>", help: "Model directory or GGUF file."),
            .option("prompt", short: "p", value: "<text>", help: "Prompt text."),
            .option("max-tokens", short: "n", value: "<n>", help: "Maximum new tokens.", default: "128"),
            .option("ctx", short: "c", value: "<n>",
                    help: "Context window, prompt plus new tokens; generation stops when it is full (default: the model's max_position_embeddings)."),
            .option("temperature", value: "<t>", help: "Sampling temperature; 0 is greedy.", default: "0"),
            .option("top-k", value: "<k>", help: "Sample among the k most likely tokens."),
            .option("top-p", value: "<p>", help: "Nucleus sampling probability mass."),
            .option("seed", value: "<n>", help: "Sampling seed.", default: "0"),
            .option("threads", short: "t", value: "<n>", help: "Worker threads.", default: "all cores"),
            KVCacheType.option,
            CPUWeights.option,
            PackedActivations.option,
            .flag("ignore-eos", help: "Keep generating after an end-of-sequence token."),
            .flag("prefer-json", help: "Use tokenizer.json even when a tokenizer.model is present."),
        ] + DeviceSelection.options)

    let model: String
    let prompt: String
    let maxTokens: Int
    /// nil: the model's max_position_embeddings.
    let ctx: Int?
    let temperature: Double
    let topK: Int?
    let topP: Double?
    let seed: Int
    let threads: Int
    let weights: CPUWeights
    let activations: PackedActivations
    let kvCache: KVCacheType
    let device: DeviceSelection
    let ignoreEOS: Bool
    let preferJSON: Bool

    init(_ args: ParsedArguments) throws(UsageError) {
        model = try args.required("model", "<dir|file.gguf>")
        prompt = try args.required("prompt", "<text>")
        maxTokens = try args.int("max-tokens", default: 128, in: 1...1_000_000)
        ctx = args.isSet("ctx") ? try args.int("ctx", default: 0, in: 2...1_048_576) : nil
        temperature = try args.double("temperature", default: 0, in: 0...100)
        topK = args.isSet("top-k") ? try args.int("top-k", default: 0, in: 1...Int.max) : nil
        topP = args.isSet("top-p") ? try args.double("top-p", default: 1, in: 0...1) : nil
        seed = try args.int("seed", default: 0, in: 0...Int.max)
        threads = try args.int("threads", default: Kernels.defaultThreads, in: 1...4096)
        device = try DeviceSelection(args)
        weights = try CPUWeights(args, device: device.device)
        activations = try PackedActivations(args, device: device.device)
        kvCache = try KVCacheType(args)
        ignoreEOS = args.has("ignore-eos")
        preferJSON = args.has("prefer-json")
    }

    func validate() throws(UsageError) {
        if temperature == 0 && (topK != nil || topP != nil) {
            throw UsageError("'--top-k' and '--top-p' need '--temperature' above 0")
        }
    }

    func run(console: Console) throws {
        let loaded = try LoadedModel(path: model)
        let tokenizer = try loaded.tokenizer(preferJSON: preferJSON)
        let promptIDs = tokenizer.encode(prompt, addSpecialTokens: true)
        guard !promptIDs.isEmpty else { throw UsageError("the prompt tokenizes to nothing; give some text") }
        let trained = loaded.config.maxPositionEmbeddings
        let window = ctx ?? trained
        guard promptIDs.count < window else {
            throw UsageError("the prompt is \(promptIDs.count) tokens, which fills the context window of \(window) "
                + (ctx == nil ? "(the model's max_position_embeddings); raise it with --ctx" : "(--ctx)"))
        }
        if window > trained {
            console.log("warning: --ctx \(window) exceeds the model's max_position_embeddings (\(trained)); positions past it were not trained")
        }
        // The cache holds the prompt and every new token but the last (it is never fed back).
        let budget = min(maxTokens, window - promptIDs.count)
        let capacity = promptIDs.count + budget
        let prefill: () throws -> [Float], step: (Int) throws -> [Float]
        if device.device == .cuda {
            let context = try device.openContext(console: console)
            let gpu = try CUDAModel(context: context, model: loaded, capacity: capacity, maxTokens: min(promptIDs.count, 512),
                                    kvCache: kvCache)
            prefill = { try gpu.forward(promptIDs, logits: .last) }
            step = { try gpu.forward([$0], logits: .last) }
        } else {
            let runtime = try cpuModel(loaded, weights: weights, activations: activations, kvCache: kvCache, threads: threads)
            let session = try InferenceSession(model: runtime, capacity: capacity)
            prefill = { try session.prefill(promptIDs, logits: .last) }
            step = { try session.step($0) }
        }
        var sampler = try Sampler(temperature: Float(temperature), topK: topK, topP: topP.map(Float.init), seed: UInt64(seed))
        var stops = Set(loaded.config.eosTokenID)
        if let eos = tokenizer.eosTokenID { stops.insert(eos) }
        if ignoreEOS { stops = [] }

        // Stream by decoding prompt + generated ids and printing what is new, so spaces
        // (Metaspace, byte-level) and multi-byte characters split across tokens come out right.
        let promptText = tokenizer.decode(promptIDs, skipSpecialTokens: true)
        var printed = 0
        var generated: [Int] = []
        console.write(prompt)
        let start = DispatchTime.now().uptimeNanoseconds
        var firstTokenAt: UInt64 = 0
        let out = try sampler.generate(maxNewTokens: budget, stopTokens: stops, onToken: { id in
            if firstTokenAt == 0 { firstTokenAt = DispatchTime.now().uptimeNanoseconds }
            generated.append(id)
            let text = String(tokenizer.decode(promptIDs + generated, skipSpecialTokens: true).unicodeScalars.dropFirst(promptText.unicodeScalars.count))
            // Hold back an incomplete multi-byte character (decoded as U+FFFD) until it completes.
            if !text.hasSuffix("\u{FFFD}"), text.unicodeScalars.count > printed {
                console.write(String(text.unicodeScalars.dropFirst(printed)))
                printed = text.unicodeScalars.count
            }
            return true
        }, prefill: prefill, step: step)
        console.print()
        let end = DispatchTime.now().uptimeNanoseconds
        let prefillSeconds = Double(firstTokenAt - start) / 1e9
        let decodeSeconds = Double(end - firstTokenAt) / 1e9
        let stopped = stops.contains(out.last ?? -1)
            ? ", stopped at end-of-sequence"
            : (out.count == budget && budget < maxTokens ? ", stopped at the end of the \(window)-token context window (--ctx)" : "")
        console.log(String(format: "generate: prompt %d tokens in %.2f s (%.1f t/s), %d new tokens, decode %.1f t/s%@",
                           promptIDs.count, prefillSeconds, Double(promptIDs.count) / max(prefillSeconds, 1e-9), out.count,
                           Double(max(out.count - 1, 0)) / max(decodeSeconds, 1e-9), stopped))
    }
}
