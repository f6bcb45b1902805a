import Foundation
import SlimIO
import SlimKernels
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
            deviation of tokens/s.
            """,
        examples: [
            "slim-quant bench --model ~/.cache/slim-quant-fixtures/smollm2-135m-f32",
            "slim-quant bench --model ../shared/models/stories260K --prompt-tokens 128 --gen-tokens 32 --json",
        ],
        options: [
            .option("model", short: "m", value: "<dir|file.gguf>", help: "Model directory or GGUF file."),
            .option("prompt-tokens", short: "p", value: "<n>", help: "Prefill length; 0 skips the test.", default: "512"),
            .option("gen-tokens", short: "n", value: "<n>", help: "Generated tokens; 0 skips the test.", default: "128"),
            .option("repetitions", short: "r", value: "<n>", help: "Timed runs per test.", default: "5"),
            .option("threads", short: "t", value: "<n>", help: "Worker threads.", default: "all cores"),
            .flag("json", help: "Print results as JSON."),
        ])

    let model: String
    let promptTokens: Int
    let genTokens: Int
    let repetitions: Int
    let threads: Int
    let json: Bool

    init(_ args: ParsedArguments) throws(UsageError) {
        model = try args.required("model", "<dir|file.gguf>")
        promptTokens = try args.int("prompt-tokens", default: 512, in: 0...1_048_576)
        genTokens = try args.int("gen-tokens", default: 128, in: 0...1_048_576)
        repetitions = try args.int("repetitions", default: 5, in: 1...1000)
        threads = try args.int("threads", default: Kernels.defaultThreads, in: 1...4096)
        json = args.has("json")
    }

    func validate() throws(UsageError) {
        if promptTokens == 0 && genTokens == 0 { throw UsageError("nothing to measure: both --prompt-tokens and --gen-tokens are 0") }
    }

    struct Measurement {
        let test: String
        let tokens: Int
        let rates: [Double]
        var mean: Double { rates.reduce(0, +) / Double(rates.count) }
        var sd: Double {
            guard rates.count > 1 else { return 0 }
            let m = mean
            return (rates.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(rates.count - 1)).squareRoot()
        }
    }

    func run(console: Console) throws {
        let loaded = try LoadedModel(path: model)
        let weights = try LlamaWeights(model: loaded)
        let runtime = LlamaModel(weights: weights, threads: threads)
        let session = try InferenceSession(model: runtime, capacity: max(promptTokens, genTokens, 1))
        var rng = SplitMix64(seed: 42)
        let vocab = loaded.config.vocabSize
        let ids = (0..<max(promptTokens, genTokens)).map { _ in Int(rng.next() % UInt64(vocab)) }

        var results: [Measurement] = []
        if promptTokens > 0 {
            results.append(try measure("pp\(promptTokens)", tokens: promptTokens) {
                session.reset()
                _ = try session.prefill(Array(ids.prefix(promptTokens)), logits: .last)
            })
        }
        if genTokens > 0 {
            results.append(try measure("tg\(genTokens)", tokens: genTokens) {
                session.reset()
                for t in ids.prefix(genTokens) { _ = try session.step(t) }
            })
        }
        let size = weightBytes(loaded)
        let name = "\(loaded.config.modelType) \(formatCount(loaded.parameterCount)) \(dtypeSummary(loaded))"
        if json {
            let rows: [JSON] = results.map { m in
                ["model": .string(name), "size_bytes": .int(Int64(size)), "params": .int(Int64(loaded.parameterCount)),
                 "backend": "CPU", "threads": .int(Int64(threads)), "test": .string(m.test),
                 "tokens_per_second": .double(m.mean), "stddev": .double(m.sd),
                 "samples": .array(m.rates.map { .double($0) })]
            }
            console.print(JSON.array(rows).serialized(pretty: true))
            return
        }
        let header = ["model", "size", "params", "backend", "threads", "test", "t/s"]
        var table = [header]
        for m in results {
            table.append([name, formatBytes(size), formatCount(loaded.parameterCount), "CPU", String(threads), m.test,
                          String(format: "%.2f ± %.2f", m.mean, m.sd)])
        }
        console.print(markdownTable(table))
    }

    private func measure(_ test: String, tokens: Int, _ body: () throws -> Void) throws -> Measurement {
        try body()  // warm-up: page in weights, size scratch buffers
        var rates: [Double] = []
        for _ in 0..<repetitions {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try body()
            let s = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            rates.append(Double(tokens) / s)
        }
        return Measurement(test: test, tokens: tokens, rates: rates)
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

/// SplitMix64: a tiny deterministic generator for benchmark token ids.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
