import Foundation
import SlimIO
import SlimTokenizer

/// A model opened from wherever the CLI accepts one, with its config parsed and its tensors
/// checked against the LLaMA layout before anything else happens:
///
/// - a Hugging Face directory: `config.json` plus `model.safetensors` or
///   `model.safetensors.index.json` and its shards (tokenizer files alongside);
/// - a `.gguf` file (llama architecture), imported through `GGUFImport`;
/// - the `config.json` or `model.safetensors` file of such a directory (its directory is used).
///
/// Every failure is a one-line error naming the path: missing directory, no config.json,
/// unsupported architecture, no weights (PyTorch `.bin` checkpoints are named as such),
/// malformed safetensors, tensors that do not match the config.
public final class LoadedModel: @unchecked Sendable {
    public enum Format: String, Sendable {
        /// A Hugging Face directory with safetensors weights (single file or sharded).
        case safetensors
        /// A GGUF file.
        case gguf
    }

    /// The path as given.
    public let path: String
    /// The model directory (for a GGUF file: the file itself).
    public let location: String
    public let format: Format
    public let config: LlamaConfig
    public let layout: TensorLayout
    /// The weights, in Hugging Face naming. For GGUF, tensors are dequantized to F32 on first
    /// access (see `GGUFImport`).
    public let weights: TensorSource
    /// Where config.json came from (the GGUF file for imports).
    public let configPath: String

    /// Parameters implied by the config (the tied classifier counted once).
    public var parameterCount: Int { layout.parameterCount }

    /// Opens and validates the model at `path`.
    public init(path: String) throws {
        self.path = path
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir) else {
            throw FileError(path, "no such file or directory (expected a model directory or a .gguf file)")
        }
        var directory = path
        if !isDir.boolValue {
            if Self.isGGUF(path) {
                let gguf = try GGUFImport(path: path)
                let config = try LlamaConfig(json: gguf.config, path: path)
                let layout = TensorLayout(config: config)
                try layout.validate(gguf, path: path)
                location = path
                format = .gguf
                configPath = path
                self.config = config
                self.layout = layout
                weights = gguf
                return
            }
            let name = (path as NSString).lastPathComponent
            guard name == "config.json" || name.hasSuffix(".safetensors") || name == SafetensorsCheckpoint.indexFileName else {
                throw FileError(path, "not a model: expected a model directory (config.json + model.safetensors) or a .gguf file")
            }
            let parent = (path as NSString).deletingLastPathComponent
            directory = parent.isEmpty ? "." : parent
        }

        location = directory
        format = .safetensors
        configPath = (directory as NSString).appendingPathComponent("config.json")
        guard fm.fileExists(atPath: configPath) else {
            throw FileError(directory, "no config.json: not a Hugging Face model directory (a .gguf file can be given instead)")
        }
        // The config first: an unsupported architecture is reported as such, not as odd weights.
        let config = try LlamaConfig(path: configPath)
        let weights: SafetensorsCheckpoint
        do {
            weights = try SafetensorsCheckpoint(directory: directory)
        } catch let e as SafetensorsFileError where e.kind == .noCheckpoint {
            throw FileError(directory, Self.missingWeightsMessage(directory))
        }
        let layout = TensorLayout(config: config, packedGroupSize: config.packing?.groupSize)
        try layout.validate(weights, path: Self.weightsDescription(weights, directory: directory))
        self.config = config
        self.layout = layout
        self.weights = weights
    }

    // MARK: Tokenizer

    /// The model's tokenizer: for a directory, `Tokenizer.load(directory:preferJSON:)`
    /// (tokenizer.model / tokenizer.json and tokenizer_config.json there); for GGUF, the
    /// vocabulary embedded in the file as llama.cpp runs it (`GGUFImport.tokenizer()`:
    /// SentencePiece BPE for "llama" vocabularies), or with `preferJSON` the tokenizer.json
    /// that `convert` writes for it (Hugging Face's merge-based BPE, which differs from
    /// SentencePiece at some runs of spaces).
    public func tokenizer(preferJSON: Bool = false) throws -> Tokenizer {
        if let gguf = weights as? GGUFImport {
            return preferJSON ? try Tokenizer(json: gguf.tokenizerJSON, path: path) : try gguf.tokenizer()
        }
        return try Tokenizer.load(directory: location, preferJSON: preferJSON)
    }

    // MARK: Helpers

    /// True for a file whose first four bytes are the GGUF magic, or that is named *.gguf
    /// (so a truncated .gguf gets the GGUF reader's specific error).
    static func isGGUF(_ path: String) -> Bool {
        if path.lowercased().hasSuffix(".gguf") { return true }
        guard let h = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? h.close() }
        let magic = (try? h.read(upToCount: 4)) ?? Data()
        return magic == Data("GGUF".utf8)
    }

    static func missingWeightsMessage(_ directory: String) -> String {
        let fm = FileManager.default
        let entries = (try? fm.contentsOfDirectory(atPath: directory)) ?? []
        if entries.contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".pt") || $0.hasSuffix(".pth") }) {
            return "no model.safetensors (found PyTorch .bin/.pt weights, which are not supported: save the model with safetensors)"
        }
        if let gguf = entries.first(where: { $0.lowercased().hasSuffix(".gguf") }) {
            return "no model.safetensors or model.safetensors.index.json (give the GGUF file \(gguf) itself instead)"
        }
        return "no weights: expected model.safetensors or model.safetensors.index.json next to config.json"
    }

    /// Names the weights in layout errors: the single file, or the index of a sharded set.
    static func weightsDescription(_ weights: SafetensorsCheckpoint, directory: String) -> String {
        if weights.indexMetadata != nil || weights.shards.count > 1 {
            return (directory as NSString).appendingPathComponent(SafetensorsCheckpoint.indexFileName)
        }
        return weights.shards.first?.path ?? directory
    }
}
