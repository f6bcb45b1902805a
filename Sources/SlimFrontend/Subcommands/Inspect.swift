import Foundation
import SlimIO
import SlimModel
import SlimPipeline

/// `slim-quant inspect`: architecture, sizes, parameter count, dtypes and every tensor's shape.
struct InspectCommand: SlimCommand {
    static let configuration = CommandConfiguration(
        name: "inspect",
        abstract: "Show a model's architecture, parameter count, dtypes and tensor shapes.",
        usage: "--model <dir|file.gguf> [--json] [--no-tensors] | --allocation <file> [--svg <out.svg>] [--model <dir>]",
        discussion: """
            Opens the model exactly as every other command does: config.json is parsed and every
            expected tensor is checked for presence and shape, so a model that inspects cleanly
            loads cleanly. For GGUF files the stored tensor type (e.g. Q4_1) is shown.
            With --allocation, prints a per-layer summary of a quantization bit allocation
            (allocation.json, written by every quantize run) and, with --svg, draws it as a
            heatmap (layers × modules × groups, colour = bits); with --model as well, the
            allocation is checked against that model's shapes.
            """,
        examples: [
            "slim-quant inspect --model ../shared/models/stories260K",
            "slim-quant inspect --model model.gguf --json",
            "slim-quant inspect --allocation out/allocation.json --svg allocation.svg",
        ],
        options: [
            .option("model", short: "m", value: "<dir|file.gguf>", help: "Model directory or GGUF file."),
            .flag("json", help: "Print one JSON object instead of text."),
            .flag("no-tensors", help: "Omit the per-tensor table."),
            .option("allocation", value: "<file>", help: "Summarize a bit allocation file instead of a model."),
            .option("svg", value: "<out.svg>", help: "With --allocation: write a heatmap of it."),
        ])

    let model: String?
    let json: Bool
    let tensors: Bool
    let allocation: String?
    let svg: String?

    init(_ args: ParsedArguments) throws(UsageError) {
        allocation = args.string("allocation")
        svg = args.string("svg")
        model = allocation == nil ? try args.required("model", "<dir|file.gguf>") : args.string("model")
        json = args.has("json")
        tensors = !args.has("no-tensors")
    }

    func validate() throws(UsageError) {
        if svg != nil && allocation == nil { throw UsageError("'--svg' needs '--allocation <file>'") }
        if allocation != nil && (json || !tensors) { throw UsageError("'--json' and '--no-tensors' apply to models, not to '--allocation'") }
    }

    struct Row {
        let name: String
        let dtype: String
        let shape: [Int]
    }

    func run(console: Console) throws {
        if let allocation { return try inspectAllocation(allocation, console: console) }
        let model = self.model!
        let loaded = try LoadedModel(path: model)
        let c = loaded.config
        let rows = tensorRows(loaded)
        var dtypeCounts: [String: Int] = [:]
        for r in rows { dtypeCounts[r.dtype, default: 0] += 1 }
        let dtypes = dtypeCounts.sorted { $0.key < $1.key }
        let tokenizer = try? loaded.tokenizer()
        let onDisk = diskBytes(loaded)
        let packed = c.packing == nil ? nil : try PackedSizeReport(model: loaded)

        if json {
            var obj: JSONObject = [
                "path": .string(model),
                "format": .string(loaded.format.rawValue),
                "architecture": .string(c.architecture),
                "parameters": .int(Int64(loaded.parameterCount)),
                "file_bytes": .int(Int64(onDisk)),
                "config": c.toJSON(),
                "dtypes": .object(JSONObject(dtypes.map { ($0.key, JSON.int(Int64($0.value))) })),
            ]
            if let tokenizer {
                obj["tokenizer"] = ["kind": .string(tokenizer.kindDescription), "vocabulary": .int(Int64(tokenizer.vocabularySize))]
            }
            if let packed { obj["packing"] = packed.json(fileBytes: onDisk, parameterCount: loaded.parameterCount) }
            if tensors {
                obj["tensors"] = .array(rows.map { r in
                    ["name": .string(r.name), "dtype": .string(r.dtype), "shape": .array(r.shape.map { .int(Int64($0)) })]
                })
            }
            console.print(JSON.object(obj).serialized(pretty: true))
            return
        }

        let rope: String = {
            var s = "θ \(formatNumber(c.ropeTheta))"
            if case .llama3(let f, _, _, _)? = c.ropeScaling { s += ", llama3 scaling ×\(formatNumber(f))" }
            return s
        }()
        let lines: [(String, String)] = [
            ("model", "\(model) (\(loaded.format.rawValue))"),
            ("architecture", "\(c.architecture) (model_type \(c.modelType))"),
            ("parameters", "\(formatCount(loaded.parameterCount)) (\(loaded.parameterCount))"),
            ("size on disk", formatBytes(onDisk)),
            ("layers", "\(c.numHiddenLayers), hidden \(c.hiddenSize), intermediate \(c.intermediateSize)"),
            ("attention", "\(c.numAttentionHeads) heads, \(c.numKeyValueHeads) KV heads, head_dim \(c.headDim)"
                + (c.attentionBias ? ", bias" : "")),
            ("rope", rope + ", max positions \(c.maxPositionEmbeddings)"),
            ("norm", "RMSNorm eps \(formatNumber(c.rmsNormEps))"),
            ("vocabulary", "\(c.vocabSize), embeddings \(c.tieWordEmbeddings ? "tied" : "untied")"),
            ("dtypes", dtypes.map { "\($0.key) × \($0.value)" }.joined(separator: ", ")),
            ("tokenizer", tokenizer.map { "\($0.kindDescription), \($0.vocabularySize) tokens" } ?? "none found"),
        ]
        for (k, v) in lines { console.print(k.padding(toLength: 14, withPad: " ", startingAt: 0) + v) }
        if let packed {
            console.print()
            for line in packed.lines(fileBytes: onDisk, parameterCount: loaded.parameterCount) { console.print(line) }
        }
        guard tensors else { return }
        console.print()
        let nameWidth = max(6, rows.map(\.name.count).max() ?? 0) + 2
        console.print("tensor".padding(toLength: nameWidth, withPad: " ", startingAt: 0) + "dtype  shape")
        for r in rows {
            console.print(r.name.padding(toLength: nameWidth, withPad: " ", startingAt: 0)
                          + r.dtype.padding(toLength: 7, withPad: " ", startingAt: 0)
                          + "[" + r.shape.map(String.init).joined(separator: ", ") + "]")
        }
    }

    private func inspectAllocation(_ path: String, console: Console) throws {
        let a = try AllocationFile.load(path: path)
        if let model {
            let loaded = try LoadedModel(path: model)
            try a.validate(layout: loaded.layout, path: path)
        }
        for line in a.summary() { console.print(line) }
        if let svg {
            try AtomicFile.write(text: a.svg(), to: svg)
            console.log("wrote \(svg)")
        }
    }

    /// Tensors in storage order, with their stored type (GGML type for GGUF files).
    private func tensorRows(_ loaded: LoadedModel) -> [Row] {
        if let gguf = loaded.weights as? GGUFImport {
            return gguf.tensorNames.map { name in
                Row(name: name, dtype: gguf.storedType(name).map { "\($0)" } ?? "?", shape: gguf.shape(name) ?? [])
            }
        }
        return loaded.weights.tensorNames.compactMap { name in
            loaded.weights.tensor(name).map { Row(name: name, dtype: $0.dtype.rawValue, shape: $0.shape) }
        }
    }

    private func diskBytes(_ loaded: LoadedModel) -> Int {
        if let ckpt = loaded.weights as? SafetensorsCheckpoint { return ckpt.shards.reduce(0) { $0 + $1.fileSize } }
        let attrs = try? FileManager.default.attributesOfItem(atPath: loaded.path)
        return (attrs?[.size] as? NSNumber)?.intValue ?? 0
    }
}

/// Shortest round-tripping text for config numbers: "10000", "1e-05", "0.5".
func formatNumber(_ d: Double) -> String {
    if d.rounded() == d, abs(d) < 1e15 { return String(Int64(d)) }
    return "\(d)"
}
