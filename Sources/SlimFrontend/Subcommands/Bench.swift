import Foundation
import SlimIO
import SlimKernels
import SlimCUDA
import SlimModel
import SlimRuntime

/// `slim-quant bench`: llama-bench style prefill and decode throughput.
struct BenchCommand: SlimCommand {
    static let configuration = CommandConfiguration(
        name: "bench",
        abstract: "Measure prefill and decode tokens/s (llama-bench style table).",
        usage: "--model <dir|file.gguf> [--prompt-tokens 512] [--gen-tokens 128] [options]",
        discussion: """
            Like llama-bench: ppN prefills N tokens in one batch from an empty context (logits of
            the last position only); tgN generates N tokens one at a time from an empty context,
            feeding each back through the KV cache. Token ids are pseudo-random, so tokenization
            is not measured. One warm-up run, then --repetitions timed runs: mean ± standard
            deviation of tokens/s. --depth N (llama-bench -d; a list such as 0,2048 runs each test
            at each depth) starts the tests after N context tokens, prefilled untimed:
            "tg128 @ d2048" is decode speed with 2048 positions in the cache, which attention reads
            on every step.
            --device cuda runs the resident GPU model (weights and KV cache on the device; build the
            backend with scripts/build-cuda.sh). --synthetic llama-7b (with --device cuda) measures a
            random packed model of that shape instead of a checkpoint: groups of 128 at --bits − 1,
            --bits and --bits + 1 (a quarter each at the ends, mean exactly --bits), fp16 embedding and
            classifier. Its weights are random: only the speed is meaningful.
            """,
        examples: [
            "slim-quant bench --model ~/.cache/slim-quant-fixtures/smollm2-135m-f32",
            "slim-quant bench --model ../shared/models/stories260K --prompt-tokens 128 --gen-tokens 32 --json",
            "slim-quant bench --synthetic llama-7b --bits 2 --device cuda",
            "slim-quant bench --synthetic llama-7b --bits 2 --device cuda -p 0 -n 128 --depth 0,2048 --kv-cache f16",
        ],
        options: [
            .option("model", short: "m", value: "<dir|file.gguf>", help: "Model directory or GGUF file."),
            .option("synthetic", value: "<llama-7b>", help: "A random packed model of this shape (needs --device cuda)."),
            .option("bits", value: "<2|3|4>", help: "Average bits of the --synthetic model.", default: "2"),
            .option("prompt-tokens", short: "p", value: "<n>", help: "Prefill length; 0 skips the test.", default: "512"),
            .option("gen-tokens", short: "n", value: "<n>", help: "Generated tokens; 0 skips the test.", default: "128"),
            .option("depth", short: "d", value: "<n[,n…]>", help: "Context tokens prefilled (untimed) before each test.",
                    default: "0"),
            .option("repetitions", short: "r", value: "<n>", help: "Timed runs per test.", default: "5"),
            .option("threads", short: "t", value: "<n>", help: "Worker threads.", default: "all cores"),
            .flag("json", help: "Print results as JSON."),
        ] + DeviceSelection.options + [KVCacheType.option, CPUWeights.option, PackedActivations.option])

    let model: String?
    let synthetic: SyntheticModel?
    let bits: Int
    let device: DeviceSelection
    let weights: CPUWeights
    let activations: PackedActivations
    let kvCache: KVCacheType
    let promptTokens: Int
    let genTokens: Int
    let depths: [Int]
    let repetitions: Int
    let threads: Int
    let json: Bool

    init(_ args: ParsedArguments) throws(UsageError) {
        device = try DeviceSelection(args)
        weights = try CPUWeights(args, device: device.device)
        activations = try PackedActivations(args, device: device.device)
        kvCache = try KVCacheType(args)
        synthetic = args.isSet("synthetic") ? try args.choice("synthetic", default: SyntheticModel.llama7b) : nil
        if synthetic != nil {
            guard !args.isSet("model") else { throw UsageError("'--synthetic' and '--model' are mutually exclusive") }
            guard device.device == .cuda else { throw UsageError("'--synthetic' runs only with '--device cuda'") }
            model = nil
        } else {
            model = try args.required("model", "<dir|file.gguf>")
            if args.isSet("bits") { throw UsageError("'--bits' applies only with '--synthetic'") }
        }
        bits = try args.int("bits", default: 2, in: 2...4)
        promptTokens = try args.int("prompt-tokens", default: 512, in: 0...1_048_576)
        genTokens = try args.int("gen-tokens", default: 128, in: 0...1_048_576)
        depths = try args.ints("depth", default: [0], in: 0...1_048_576)
        repetitions = try args.int("repetitions", default: 5, in: 1...1000)
        threads = try args.int("threads", default: Kernels.defaultThreads, in: 1...4096)
        json = args.has("json")
    }

    func validate() throws(UsageError) {
        if promptTokens == 0 && genTokens == 0 { throw UsageError("nothing to measure: both --prompt-tokens and --gen-tokens are 0") }
    }

    struct Measurement {
        let test: String
        let depth: Int
        let tokens: Int
        let rates: [Double]
        var mean: Double { rates.reduce(0, +) / Double(rates.count) }
        var sd: Double {
            guard rates.count > 1 else { return 0 }
            let m = mean
            return (rates.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(rates.count - 1)).squareRoot()
        }
    }

    /// What is measured: the model's label, weight bytes and parameters, and the two workloads.
    private struct Workload {
        let name: String
        let size: Int
        let parameters: Int
        let vocab: Int
        let backend: String
        let prefill: ([Int]) throws -> Void
        let step: (Int) throws -> Void
        let reset: () -> Void
    }

    func run(console: Console) throws {
        let deepest = depths.max() ?? 0
        let capacity = deepest + max(promptTokens, genTokens, 1)
        let work = device.device == .cuda ? try gpuWorkload(console: console, capacity: capacity)
                                           : try cpuWorkload(capacity: capacity)
        var rng = SplitMix64(seed: 42)
        let ids = (0..<(deepest + max(promptTokens, genTokens))).map { _ in Int(rng.next() % UInt64(work.vocab)) }

        var results: [Measurement] = []
        for depth in depths {
            let context = Array(ids.prefix(depth)), fresh = ids.dropFirst(depth)
            let start = {
                work.reset()
                if !context.isEmpty { try work.prefill(context) }
            }
            let at = depth > 0 ? " @ d\(depth)" : ""
            if promptTokens > 0 {
                results.append(try measure("pp\(promptTokens)\(at)", depth: depth, tokens: promptTokens, setup: start) {
                    try work.prefill(Array(fresh.prefix(promptTokens)))
                })
            }
            if genTokens > 0 {
                results.append(try measure("tg\(genTokens)\(at)", depth: depth, tokens: genTokens, setup: start) {
                    for t in fresh.prefix(genTokens) { try work.step(t) }
                })
            }
        }
        let workers = device.device == .cuda ? "-" : String(threads)
        if json {
            let rows: [JSON] = results.map { m in
                ["model": .string(work.name), "size_bytes": .int(Int64(work.size)), "params": .int(Int64(work.parameters)),
                 "backend": .string(work.backend), "threads": .string(workers), "test": .string(m.test),
                 "n_depth": .int(Int64(m.depth)),
                 "tokens_per_second": .double(m.mean), "stddev": .double(m.sd),
                 "samples": .array(m.rates.map { .double($0) })]
            }
            console.print(JSON.array(rows).serialized(pretty: true))
            return
        }
        let header = ["model", "size", "params", "backend", "threads", "test", "t/s"]
        var table = [header]
        for m in results {
            table.append([work.name, formatBytes(work.size), formatCount(work.parameters), work.backend, workers, m.test,
                          String(format: "%.2f ± %.2f", m.mean, m.sd)])
        }
        console.print(markdownTable(table))
    }

    private func cpuWorkload(capacity: Int) throws -> Workload {
        let loaded = try LoadedModel(path: model!)
        let runtime = try cpuModel(loaded, weights: weights, activations: activations, kvCache: kvCache, threads: threads)
        let session = try InferenceSession(model: runtime, capacity: capacity)
        return Workload(name: "\(loaded.config.modelType) \(formatCount(loaded.parameterCount)) \(dtypeSummary(loaded))",
                        size: weightBytes(loaded), parameters: loaded.parameterCount, vocab: loaded.config.vocabSize,
                        backend: (["CPU"] + (activations == .int8 ? ["int8 activations"] : [])
                                  + (kvCache == .f32 ? [] : ["\(kvCache) KV cache"])).joined(separator: ", "),
                        prefill: { _ = try session.prefill($0, logits: .last) },
                        step: { _ = try session.step($0) },
                        reset: { session.reset() })
    }

    private func gpuWorkload(console: Console, capacity: Int) throws -> Workload {
        let context = try device.openContext(console: console)
        // The test's prompt in one block; a --depth context in blocks of up to 512 rows.
        let prefillBlock = max(promptTokens, min(depths.max() ?? 0, 512), 1)
        let gpu: CUDAModel, name: String, size: Int
        if let synthetic {
            console.log("bench: building a random \(synthetic.rawValue) model at \(bits) bits on the GPU")
            gpu = try CUDAModel.synthetic(synthetic, bits: bits, context: context, capacity: capacity,
                                          maxTokens: prefillBlock, kvCache: kvCache)
            name = "\(synthetic.rawValue) synthetic \(bits)-bit"
            size = gpu.weightBytes
        } else {
            let loaded = try LoadedModel(path: model!)
            gpu = try CUDAModel(context: context, model: loaded, capacity: capacity, maxTokens: prefillBlock,
                                kvCache: kvCache)
            name = "\(loaded.config.modelType) \(formatCount(loaded.parameterCount)) \(dtypeSummary(loaded))"
            size = weightBytes(loaded)
        }
        console.log("bench: \(formatBytes(gpu.weightBytes)) of weights, \(formatBytes(gpu.deviceBytes)) on the device")
        return Workload(name: name, size: size, parameters: gpu.config.parameterCount, vocab: gpu.config.vocabSize,
                        backend: kvCache == .f32 ? "CUDA" : "CUDA, \(kvCache) KV cache",
                        prefill: { _ = try gpu.forward($0, logits: .last) },
                        step: { _ = try gpu.forward([$0], logits: .last) },
                        reset: { gpu.reset() })
    }

    /// `setup` (untimed: reset, the --depth context), then `body` timed; first once as a warm-up.
    private func measure(_ test: String, depth: Int, tokens: Int, setup: () throws -> Void, _ body: () throws -> Void)
        throws -> Measurement {
        try setup()
        try body()  // warm-up: page in weights, size scratch buffers
        var rates: [Double] = []
        for _ in 0..<repetitions {
            try setup()
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            rates.append(Double(tokens) / s)
        }
        return Measurement(test: test, depth: depth, tokens: tokens, rates: rates)
    }

    private func weightBytes(_ loaded: LoadedModel) -> Int {
        loaded.weights.tensorNames.reduce(0) { sum, name in
            guard let info = loaded.weights.tensorInfo(name) else { return sum }
            return sum + info.shape.reduce(1, *) * info.dtype.byteSize
        }
    }

    private func dtypeSummary(_ loaded: LoadedModel) -> String {
        if let p = loaded.config.packing {
            return "slim-packed \(p.method ?? "?") \(p.bits.map { "\($0)-bit" } ?? "mixed") g\(p.groupSize)"
        }
        let types = Set(loaded.weights.tensorNames.compactMap { loaded.weights.tensorInfo($0)?.dtype.rawValue })
        return types.sorted().joined(separator: "/")
    }
}

/// A GitHub-style table with right-aligned numeric columns, as llama-bench prints.
func markdownTable(_ rows: [[String]]) -> String {
    guard let header = rows.first else { return "" }
    let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
    func line(_ r: [String]) -> String {
        "| " + r.indices.map { c in
            let cell = r[c], pad = String(repeating: " ", count: widths[c] - cell.count)
            return c == 0 ? cell + pad : pad + cell
        }.joined(separator: " | ") + " |"
    }
    let rule = "| " + widths.indices.map { c in
        c == 0 ? String(repeating: "-", count: widths[c]) : String(repeating: "-", count: widths[c] - 1) + ":"
    }.joined(separator: " | ") + " |"
    return ([line(header), rule] + rows.dropFirst().map(line)).joined(separator: "\n")
}
