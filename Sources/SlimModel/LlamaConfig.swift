import Foundation
import SlimIO

/// The architecture hyper-parameters of a LLaMA-family model, parsed from a Hugging Face
/// `config.json` (or from the equivalent JSON a GGUF import builds).
///
/// Accepted: `LlamaForCausalLM` / model_type `llama` (LLaMA-1/2/3/3.1/3.2, TinyLlama, SmolLM, …)
/// and `MistralForCausalLM` / model_type `mistral` when it does not use sliding-window attention
/// (`sliding_window` null or ≥ `max_position_embeddings`). Everything else is refused with a
/// one-line error naming the file, because a model whose forward pass differs (biases in other
/// places, other norms, MoE, sliding windows, rotary variants) would be quantized and evaluated
/// silently wrong.
///
/// Defaults for absent keys follow transformers' `LlamaConfig` / `MistralConfig` constructors,
/// so a config means here what it means to the reference code. A key written as `null` counts
/// as absent, except `bos_token_id`/`eos_token_id`, where null means "no such token".
public struct LlamaConfig: Equatable, Sendable {
    /// Rotary-embedding frequency scaling.
    public enum RopeScaling: Equatable, Sendable {
        /// Llama 3.1's piecewise frequency scaling (`rope_type: "llama3"`).
        case llama3(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositionEmbeddings: Int)
    }

    /// `architectures[0]`, e.g. "LlamaForCausalLM".
    public let architecture: String
    /// "llama" or "mistral".
    public let modelType: String
    public let hiddenSize: Int
    public let intermediateSize: Int
    public let numHiddenLayers: Int
    public let numAttentionHeads: Int
    /// Key/value heads (grouped-query attention); equals `numAttentionHeads` for plain MHA.
    public let numKeyValueHeads: Int
    /// Per-head dimension: explicit `head_dim`, else `hiddenSize / numAttentionHeads`.
    public let headDim: Int
    public let rmsNormEps: Double
    /// Rotary base θ.
    public let ropeTheta: Double
    /// Nil for plain rotary embeddings.
    public let ropeScaling: RopeScaling?
    public let maxPositionEmbeddings: Int
    /// True when `lm_head` shares the embedding matrix.
    public let tieWordEmbeddings: Bool
    public let vocabSize: Int
    /// Nil when the config sets `bos_token_id: null`.
    public let bosTokenID: Int?
    /// Every end-of-sequence id (Llama 3.1 Instruct lists three); empty when null.
    public let eosTokenID: [Int]
    /// Biases on q/k/v/o projections.
    public let attentionBias: Bool
    /// Biases on gate/up/down projections.
    public let mlpBias: Bool
    /// Always "silu" (anything else is refused).
    public let hiddenAct: String
    /// `torch_dtype` (or transformers 5's `dtype`), informational only: the real element type
    /// is the one stored with each tensor.
    public let torchDtype: String?
    /// The `quantization_config` of a slim-packed checkpoint; nil for plain weights (including
    /// slim-quant's fake-quantized outputs, which are ordinary floating-point checkpoints).
    public let packing: PackedCheckpointConfig?

    /// Supported `architectures[0]` values and their `model_type`.
    public static let supportedArchitectures: [(architecture: String, modelType: String)] = [
        ("LlamaForCausalLM", "llama"),
        ("MistralForCausalLM", "mistral"),
    ]

    /// The largest sizes a config may declare: far above any real model (LLaMA-3.1-405B has
    /// hidden 16384, 126 layers, vocab 128256), low enough that the tensor layout, the buffers
    /// and the parameter counts derived from a config cannot exhaust memory or overflow before
    /// the weights are even looked at (a corrupt config claiming 10^11 layers is an error, not
    /// an hour of building a tensor list).
    public enum Limits {
        public static let hiddenSize = 1 << 20
        public static let intermediateSize = 1 << 22
        public static let layers = 4096
        public static let heads = 1 << 14
        public static let headDim = 1 << 16
        public static let vocabSize = 1 << 24
        public static let positions = 1 << 28
    }

    // MARK: - Loading

    /// Reads and parses `path` (a config.json file).
    public init(path: String) throws(FileError) {
        let file = try MappedFile(path: path)
        // The map must outlive every use of `file.bytes` (ARC may release `file` after its last use).
        defer { withExtendedLifetime(file) {} }
        let json: JSON
        do {
            json = try JSON.parse(file.bytes)
        } catch {
            throw FileError(path, "not valid JSON: \(error)")
        }
        try self.init(json: json, path: path)
    }

    /// Parses and validates a config object. `path` only names the source in errors.
    public init(json: JSON, path: String) throws(FileError) {
        let r = ConfigReader(json: json, path: path)
        guard json.object != nil else { throw r.fail("a model config must be a JSON object") }

        // Identity first: a config for another architecture gets the "unsupported" error, not
        // a confusing complaint about some key it does not have.
        let (architecture, modelType) = try Self.identify(r)
        self.architecture = architecture
        self.modelType = modelType
        let isMistral = modelType == "mistral"

        hiddenSize = try r.positiveInt("hidden_size", max: Limits.hiddenSize)
        intermediateSize = try r.positiveInt("intermediate_size", max: Limits.intermediateSize)
        numHiddenLayers = try r.positiveInt("num_hidden_layers", max: Limits.layers)
        numAttentionHeads = try r.positiveInt("num_attention_heads", max: Limits.heads)
        vocabSize = try r.positiveInt("vocab_size", max: Limits.vocabSize)
        numKeyValueHeads = try r.optionalPositiveInt("num_key_value_heads", max: Limits.heads) ?? numAttentionHeads
        guard numAttentionHeads % numKeyValueHeads == 0 else {
            throw r.fail("num_attention_heads (\(numAttentionHeads)) is not a multiple of num_key_value_heads (\(numKeyValueHeads))")
        }
        if let explicit = try r.optionalPositiveInt("head_dim", max: Limits.headDim) {
            headDim = explicit
        } else {
            guard hiddenSize % numAttentionHeads == 0 else {
                throw r.fail("hidden_size (\(hiddenSize)) is not a multiple of num_attention_heads (\(numAttentionHeads)) and no head_dim is given")
            }
            headDim = hiddenSize / numAttentionHeads
        }
        guard headDim % 2 == 0 else {
            throw r.fail("head_dim \(headDim) is odd; rotary embeddings rotate pairs of dimensions")
        }
        guard !numAttentionHeads.multipliedReportingOverflow(by: headDim).overflow else {
            throw r.fail("num_attention_heads × head_dim overflows")
        }

        // transformers: LlamaConfig defaults 2048 / 1e-6; MistralConfig 4096·32 / 1e-6.
        maxPositionEmbeddings = try r.optionalPositiveInt("max_position_embeddings", max: Limits.positions) ?? (isMistral ? 4096 * 32 : 2048)
        rmsNormEps = try r.optionalDouble("rms_norm_eps") ?? 1e-6
        guard rmsNormEps.isFinite, rmsNormEps > 0 else { throw r.fail("rms_norm_eps must be a positive number, found \(rmsNormEps)") }

        hiddenAct = try r.optionalString("hidden_act") ?? "silu"
        guard hiddenAct == "silu" else {
            throw r.fail("hidden_act \"\(hiddenAct)\" is not supported (LLaMA-family models use \"silu\")")
        }
        tieWordEmbeddings = try r.optionalBool("tie_word_embeddings") ?? false
        attentionBias = try r.optionalBool("attention_bias") ?? false
        mlpBias = try r.optionalBool("mlp_bias") ?? false
        if let legacy = try r.optionalString("torch_dtype") {
            torchDtype = legacy
        } else {
            torchDtype = try r.optionalString("dtype")
        }
        bosTokenID = try r.tokenID("bos_token_id", default: 1)
        eosTokenID = try r.tokenIDs("eos_token_id", default: [2])

        let rope = try RopeReader.read(r)
        ropeTheta = rope.theta
        ropeScaling = rope.scaling

        if isMistral {
            // MistralConfig's default sliding_window is 4096: an absent key means a window.
            let window = r.has("sliding_window") ? try r.optionalPositiveInt("sliding_window") : 4096
            if let window, window < maxPositionEmbeddings {
                throw r.fail("sliding-window attention is not supported (sliding_window \(window) < max_position_embeddings \(maxPositionEmbeddings))")
            }
        }
        if let partial = try r.optionalDouble("partial_rotary_factor"), partial != 1 {
            throw r.fail("partial_rotary_factor \(partial) is not supported (LLaMA rotates the whole head)")
        }
        packing = try PackedCheckpointConfig.read(r)
    }

    /// Resolves (architecture, model_type), deriving a missing one from the other.
    private static func identify(_ r: ConfigReader) throws(FileError) -> (String, String) {
        var architecture: String?
        if r.has("architectures"), r.json["architectures"] != .null {
            guard let list = r.json["architectures"]?.array else {
                throw r.fail("\"architectures\" must be a list of strings, found \(r.describe("architectures"))")
            }
            var names: [String] = []
            for item in list {
                guard let s = item.string else { throw r.fail("\"architectures\" must be a list of strings") }
                names.append(s)
            }
            guard names.count <= 1 else {
                throw r.fail("\"architectures\" lists \(names.count) classes (\(names.joined(separator: ", "))); expected one")
            }
            architecture = names.first
        }
        let modelType = try r.optionalString("model_type")
        let supported = supportedArchitectures
        let supportedText = "supported: LlamaForCausalLM (model_type llama), MistralForCausalLM (model_type mistral) without sliding-window attention"
        switch (architecture, modelType) {
        case (nil, nil):
            throw r.fail("neither \"architectures\" nor \"model_type\" is set; cannot tell which model this is (\(supportedText))")
        case (let a?, let m):
            guard let entry = supported.first(where: { $0.architecture == a }) else {
                let typeText = m.map { " (model_type \"\($0)\")" } ?? ""
                throw r.fail("unsupported architecture \"\(a)\"\(typeText); \(supportedText)")
            }
            if let m, m != entry.modelType {
                throw r.fail("architecture \"\(a)\" does not match model_type \"\(m)\" (expected \"\(entry.modelType)\")")
            }
            return (a, entry.modelType)
        case (nil, let m?):
            guard let entry = supported.first(where: { $0.modelType == m }) else {
                throw r.fail("unsupported model_type \"\(m)\"; \(supportedText)")
            }
            return (entry.architecture, m)
        }
    }

    // MARK: - Derived sizes

    /// Output features of the q projection: `numAttentionHeads × headDim`.
    public var qProjectionSize: Int { numAttentionHeads * headDim }
    /// Output features of the k and v projections: `numKeyValueHeads × headDim`.
    public var kvProjectionSize: Int { numKeyValueHeads * headDim }
    /// Query heads per key/value head.
    public var queriesPerKeyValueHead: Int { numAttentionHeads / numKeyValueHeads }

    /// Number of parameters the layout implies (embedding, every layer, final norm, and the
    /// classifier when it is not tied), saturating at `Int.max` for absurd configs.
    public var parameterCount: Int {
        TensorLayout(config: self).parameterCount
    }
}

// MARK: - Serialization

extension LlamaConfig {
    /// A Hugging Face style config.json object describing exactly this configuration (every
    /// field explicit, so transformers and this parser read the same model back).
    public func toJSON() -> JSON {
        var o = JSONObject()
        o["architectures"] = .array([.string(architecture)])
        o["model_type"] = .string(modelType)
        o["hidden_size"] = .int(Int64(hiddenSize))
        o["intermediate_size"] = .int(Int64(intermediateSize))
        o["num_hidden_layers"] = .int(Int64(numHiddenLayers))
        o["num_attention_heads"] = .int(Int64(numAttentionHeads))
        o["num_key_value_heads"] = .int(Int64(numKeyValueHeads))
        o["head_dim"] = .int(Int64(headDim))
        o["max_position_embeddings"] = .int(Int64(maxPositionEmbeddings))
        o["rms_norm_eps"] = .double(rmsNormEps)
        o["rope_theta"] = .double(ropeTheta)
        switch ropeScaling {
        case nil:
            o["rope_scaling"] = .null
        case .llama3(let factor, let low, let high, let original):
            o["rope_scaling"] = .object(JSONObject([
                ("factor", .double(factor)),
                ("low_freq_factor", .double(low)),
                ("high_freq_factor", .double(high)),
                ("original_max_position_embeddings", .int(Int64(original))),
                ("rope_type", "llama3"),
            ]))
        }
        if modelType == "mistral" { o["sliding_window"] = .null }
        o["vocab_size"] = .int(Int64(vocabSize))
        o["tie_word_embeddings"] = .bool(tieWordEmbeddings)
        o["attention_bias"] = .bool(attentionBias)
        o["mlp_bias"] = .bool(mlpBias)
        o["hidden_act"] = .string(hiddenAct)
        o["bos_token_id"] = bosTokenID.map { .int(Int64($0)) } ?? .null
        switch eosTokenID.count {
        case 0: o["eos_token_id"] = .null
        case 1: o["eos_token_id"] = .int(Int64(eosTokenID[0]))
        default: o["eos_token_id"] = .array(eosTokenID.map { .int(Int64($0)) })
        }
        if let torchDtype { o["torch_dtype"] = .string(torchDtype) }
        return .object(o)
    }
}
