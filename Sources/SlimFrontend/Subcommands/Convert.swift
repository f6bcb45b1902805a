import Foundation
import SlimIO
import SlimModel

/// `slim-quant convert`: import a llama GGUF file as a Hugging Face model directory.
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
        abstract: "Convert a llama GGUF file into a Hugging Face model directory.",
        usage: "--from <file.gguf> --out <dir> [--dtype f32|f16|bf16] [--force]",
        discussion: """
            Supports GGUF v2/v3 with tensor types F32, F16, BF16, Q8_0, Q4_0 and Q4_1, dequantized
            exactly. llama.cpp's q/k row permutation is undone, and config.json, tokenizer.json and
            tokenizer_config.json are rebuilt from the GGUF metadata. Files are written to temporary
            names and renamed, so an interrupted run never leaves a half-written model.
            """,
        examples: [
            "slim-quant convert --from ../shared/models/stories260K-gguf/stories260K-f32.gguf --out /tmp/stories260K",
            "slim-quant convert --from SmolLM2-135M-Instruct.Q4_1.gguf --out smollm2 --dtype f16",
        ],
        options: [
            .option("from", value: "<file.gguf>", help: "GGUF file to convert."),
            .option("out", short: "o", value: "<dir>", help: "Output directory (created if missing)."),
            .option("dtype", value: "<f32|f16|bf16>", help: "Element type of the written weights.", default: "f32"),
            .flag("force", help: "Overwrite a model that already exists in the output directory."),
        ])

    let from: String
    let out: String
    let dtype: OutputDType
    let force: Bool

    init(_ args: ParsedArguments) throws(UsageError) {
        from = try args.required("from", "<file.gguf>")
        out = try args.required("out", "<dir>")
        dtype = try args.choice("dtype", default: OutputDType.f32)
        force = args.has("force")
    }

    func run(console: Console) throws {
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
        do {
            try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        } catch {
            throw FileError(out, "cannot create directory: \(error.localizedDescription)")
        }
        try model.write(directory: out, dtype: dtype.dtype)
        console.log(String(format: "converted %@ -> %@ (%d tensors, %@ parameters, %@) in %.1f s",
                           from, out, model.tensorNames.count, formatCount(config.parameterCount),
                           dtype.rawValue, Date().timeIntervalSince(start)))
    }
}
