import Foundation
import SlimIO
import SlimModel
import SlimPipeline

/// `slim-quant convert`: import a llama GGUF file as a Hugging Face model directory, or expand
/// a slim-packed checkpoint into one (`--dequantize`).
struct ConvertCommand: SlimCommand {
    enum OutputDType: String, CaseIterable {
        case f32, f16, bf16
        var dtype: DType {
            switch self {
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            }
        }
    }

    static let configuration = CommandConfiguration(
        name: "convert",
        abstract: "Convert a llama GGUF file, or a slim-packed checkpoint, into a Hugging Face model directory.",
        usage: "--from <file.gguf|packed dir> --out <dir> [--dequantize] [--dtype f32|f16|bf16] [--force]",
        discussion: """
            Supports GGUF v2/v3 with tensor types F32, F16, BF16, Q8_0, Q4_0 and Q4_1, dequantized
            exactly. llama.cpp's q/k row permutation is undone, and config.json, tokenizer.json and
            tokenizer_config.json are rebuilt from the GGUF metadata. Files are written to temporary
            names and renamed, so an interrupted run never leaves a half-written model.
            With --dequantize, --from is a slim-packed checkpoint written by quantize: every packed
            linear is decoded by the format's reference decoder into a plain weight (default F16;
            --dtype f32 keeps the exact values), other tensors are copied, and config.json drops its
            quantization_config, so transformers and other tools load the result as a normal model.
            """,
        examples: [
            "slim-quant convert --from ../shared/models/stories260K-gguf/stories260K-f32.gguf --out /tmp/stories260K",
            "slim-quant convert --from SmolLM2-135M-Instruct.Q4_1.gguf --out smollm2 --dtype f16",
            "slim-quant convert --dequantize --from smollm2-slim-w2 --out smollm2-slim-w2-fp16",
        ],
        options: [
            .option("from", value: "<file.gguf|dir>", help: "GGUF file, or a packed checkpoint with --dequantize."),
            .option("out", short: "o", value: "<dir>", help: "Output directory (created if missing)."),
            .flag("dequantize", help: "Expand a slim-packed checkpoint into plain weights."),
            .option("dtype", value: "<f32|f16|bf16>", help: "Element type of the written weights.",
                    default: "f32 (f16 with --dequantize)"),
            .flag("force", help: "Overwrite a model that already exists in the output directory."),
        ])

    let from: String
    let out: String
    let dtype: OutputDType
    let force: Bool
    let dequantize: Bool

    init(_ args: ParsedArguments) throws(UsageError) {
        from = try args.required("from", "<file.gguf>")
        out = try args.required("out", "<dir>")
        dequantize = args.has("dequantize")
        dtype = try args.choice("dtype", default: dequantize ? OutputDType.f16 : OutputDType.f32)
        force = args.has("force")
    }

    func run(console: Console) throws {
        if dequantize { return try runDequantize(console: console) }
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: out, isDirectory: &isDir) {
            guard isDir.boolValue else { throw FileError(out, "output exists and is not a directory") }
            if !force, fm.fileExists(atPath: out + "/config.json") || fm.fileExists(atPath: out + "/model.safetensors") {
                throw FileError(out, "already contains a model (use --force to overwrite)")
            }
        }
        let start = Date()
        // LoadedModel validates config and every tensor's shape (from metadata, without
        // dequantizing) before anything is written.
        let loaded = try LoadedModel(path: from)
        guard let model = loaded.weights as? GGUFImport else {
            throw FileError(from, "not a GGUF file (convert reads .gguf; safetensors directories are used as they are)")
        }
        let config = loaded.config
        // write(directory:) creates `out` only once every file is complete.
        try model.write(directory: out, dtype: dtype.dtype)
        console.log(String(format: "converted %@ -> %@ (%d tensors, %@ parameters, %@) in %.1f s",
                           from, out, model.tensorNames.count, formatCount(config.parameterCount),
                           dtype.rawValue, Date().timeIntervalSince(start)))
    }
}

// MARK: - --dequantize

extension ConvertCommand {
    func runDequantize(console: Console) throws {
        let start = Date()
        let model = try LoadedModel(path: from)
        guard model.config.packing != nil else {
            throw FileError(from, "not a slim-packed checkpoint: --dequantize reads the output of quantize")
        }
        if force, FileManager.default.fileExists(atPath: out + "/config.json") {
            try? FileManager.default.removeItem(atPath: out)
        }
        try PackedDequantizer.write(model: model, to: out, dtype: dtype.dtype)
        console.log(String(format: "dequantized %@ -> %@ (%d linears as %@) in %.1f s", from, out,
                           model.layout.linearModules.count, dtype.rawValue, Date().timeIntervalSince(start)))
    }
}
