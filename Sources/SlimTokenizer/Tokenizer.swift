import Foundation
import SlimIO

/// An exact tokenizer for LLaMA-family models.
///
/// Two kinds, each reproducing its reference library id for id:
/// - **tokenizer.json** (Hugging Face `tokenizers`): BPE models (byte-level or
///   SentencePiece-style with byte fallback) with the usual normalizers, pre-tokenizers,
///   added tokens, post-processors and decoders. Anything outside the supported subset is
///   refused at load time with an error naming the file.
/// - **tokenizer.model** (the `sentencepiece` library): SentencePiece BPE models. Encoding
///   with special tokens prepends BOS (and appends EOS when configured), as LLaMA's slow
///   `LlamaTokenizer` does; text that looks like `<s>` is encoded as ordinary text.
///
/// Instances are immutable after loading and safe to use from several threads at once.
public final class Tokenizer: @unchecked Sendable {
    private enum Backend {
        case json(JSONPipeline)
        case sentencePiece(SentencePieceModel, addBOS: Bool, addEOS: Bool)
    }

    private let backend: Backend
    /// The file the tokenizer was read from (or the name given for an in-memory one).
    public let sourcePath: String
    /// e.g. "byte-level BPE (tokenizer.json)", "SentencePiece BPE (tokenizer.model)",
    /// "SentencePiece BPE (embedded vocabulary)" (built from a vocabulary in memory, e.g. GGUF).
    public let kindDescription: String
    public let bosTokenID: Int?
    public let eosTokenID: Int?

    // MARK: Loading

    /// Loads the tokenizer of a model directory.
    ///
    /// `tokenizer.model` (SentencePiece semantics, as LLaMA-1/2's slow tokenizer) is used when
    /// it exists and either there is no `tokenizer.json` or that file is only a
    /// SentencePiece-style conversion of it (BPE with byte fallback and Metaspace / legacy
    /// "▁" normalizer); otherwise `tokenizer.json`. `preferJSON` forces `tokenizer.json`.
    /// `tokenizer_config.json`, when present, supplies BOS/EOS tokens and, for the
    /// SentencePiece path and Llama tokenizer classes, `add_bos_token` / `add_eos_token`.
    public static func load(directory: String, preferJSON: Bool = false) throws -> Tokenizer {
        let fm = FileManager.default
        let jsonPath = (directory as NSString).appendingPathComponent("tokenizer.json")
        let modelPath = (directory as NSString).appendingPathComponent("tokenizer.model")
        let configPath = (directory as NSString).appendingPathComponent("tokenizer_config.json")
        let hasJSON = fm.fileExists(atPath: jsonPath), hasModel = fm.fileExists(atPath: modelPath)
        let config = fm.fileExists(atPath: configPath) ? try TokenizerConfig(path: configPath) : TokenizerConfig()
        if preferJSON && !hasJSON { throw FileError(directory, "no tokenizer.json in this directory") }
        if !hasJSON && !hasModel { throw FileError(directory, "no tokenizer.json or tokenizer.model in this directory") }
        var json: JSON? = nil
        if hasJSON { json = try readJSON(jsonPath) }
        if !preferJSON && hasModel && (json.map(JSONPipeline.isSentencePieceStyle) ?? true) {
            let model = try SentencePieceModel.load(path: modelPath)
            return Tokenizer(sentencePiece: model, config: config, path: modelPath)
        }
        guard let json else { throw FileError(directory, "no tokenizer.json in this directory") }
        return try Tokenizer(json: json, config: config, path: jsonPath)
    }

    /// Reads a tokenizer.json file.
    public convenience init(tokenizerJSONPath path: String) throws {
        try self.init(json: try Tokenizer.readJSON(path), path: path)
    }

    /// Builds a tokenizer from a parsed tokenizer.json (e.g. one assembled in memory from a
    /// GGUF file). `path` names it in errors.
    public convenience init(json: JSON, path: String) throws {
        try self.init(json: json, config: TokenizerConfig(), path: path)
    }

    /// Reads a SentencePiece tokenizer.model (BPE only); BOS is added, EOS is not.
    public convenience init(sentencePieceModelPath path: String) throws {
        self.init(sentencePiece: try SentencePieceModel.load(path: path), config: TokenizerConfig(), path: path)
    }

    /// Reads a serialized SentencePiece ModelProto from memory (the bytes of a tokenizer.model;
    /// not retained), as `init(sentencePieceModelPath:)` does after mapping the file.
    public convenience init(sentencePieceModel bytes: UnsafeRawBufferPointer, path: String) throws {
        self.init(sentencePiece: try SentencePieceModel.parse(bytes, path: path), config: TokenizerConfig(), path: path)
    }

    /// Builds a SentencePiece BPE tokenizer from a vocabulary in memory (e.g. GGUF
    /// `tokenizer.ggml.tokens/scores/token_type` of a "llama" tokenizer).
    public convenience init(sentencePiece vocabulary: SentencePieceVocabulary, addBOS: Bool = true, addEOS: Bool = false,
                            path: String) throws {
        var config = TokenizerConfig()
        config.addBOS = addBOS
        config.addEOS = addEOS
        self.init(sentencePiece: try SentencePieceModel(vocabulary, charsMap: nil, path: path), config: config, path: path,
                  kind: "SentencePiece BPE (embedded vocabulary)")
    }

    private init(json: JSON, config: TokenizerConfig, path: String) throws(FileError) {
        let pipeline = try JSONPipeline(json: json, path: path)
        var post = pipeline.post
        let byName: (String?) -> Int? = { name in name.flatMap { pipeline.id(of: $0) } }
        if let cls = config.tokenizerClass, cls.contains("Llama"), config.addBOS != nil || config.addEOS != nil {
            // transformers' LlamaTokenizerFast rebuilds its template from these flags.
            let bos = byName(config.bosToken), eos = byName(config.eosToken)
            post = PostProcessor(prefix: (config.addBOS ?? true) ? bos.map { [Int32($0)] } ?? [] : [],
                                 suffix: (config.addEOS ?? false) ? eos.map { [Int32($0)] } ?? [] : [])
        }
        pipeline.overridePost(post)
        backend = .json(pipeline)
        sourcePath = path
        kindDescription = pipeline.kindDescription
        bosTokenID = byName(config.bosToken) ?? post.prefix.first.map(Int.init)
        let fallbackEOS = ["</s>", "<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>"]
            .lazy.compactMap { pipeline.added.id(forContent: $0) }.first.map(Int.init)
        eosTokenID = byName(config.eosToken) ?? post.suffix.first.map(Int.init) ?? fallbackEOS
    }

    private init(sentencePiece model: SentencePieceModel, config: TokenizerConfig, path: String,
                 kind: String = "SentencePiece BPE (tokenizer.model)") {
        func pieceID(_ s: String?) -> Int? {
            guard let s else { return nil }
            let r = model.reserved.find(s)
            let id = r >= 0 ? r : model.mergeable.find(s)
            return id >= 0 ? Int(id) : nil
        }
        backend = .sentencePiece(model, addBOS: config.addBOS ?? true, addEOS: config.addEOS ?? false)
        sourcePath = path
        kindDescription = kind
        bosTokenID = pieceID(config.bosToken) ?? model.bosID.map(Int.init)
        eosTokenID = pieceID(config.eosToken) ?? model.eosID.map(Int.init)
    }

    /// Parses a JSON file with SlimIO's strict parser, whose object keys compare byte for byte
    /// (vocabularies hold canonically equivalent but distinct tokens, e.g. LLaMA-2's "ί"
    /// U+03AF and U+1F77). Syntax errors name the file and the byte offset.
    static func readJSON(_ path: String) throws(FileError) -> JSON {
        let file = try MappedFile(path: path)
        do {
            return try file.withBytes { bytes throws(JSONError) in try JSON.parse(bytes) }
        } catch {
            throw FileError(path, error.description)
        }
    }

    // MARK: Encoding and decoding

    /// Token ids of `text`. With `addSpecialTokens`, the post-processor's tokens (tokenizer.json)
    /// or BOS/EOS (tokenizer.model) are added. Added/special tokens written in the text are
    /// recognised for tokenizer.json either way (as in HF); never for tokenizer.model.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        switch backend {
        case .json(let p):
            return p.encode(text, addSpecialTokens: addSpecialTokens).map(Int.init)
        case .sentencePiece(let m, let addBOS, let addEOS):
            var ids = [Int32]()
            ids.reserveCapacity(text.utf8.count / 3 + 2)
            if addSpecialTokens, addBOS, let b = bosTokenID { ids.append(Int32(b)) }
            m.encode(text, into: &ids)
            if addSpecialTokens, addEOS, let e = eosTokenID { ids.append(Int32(e)) }
            return ids.map(Int.init)
        }
    }

    /// Text of `ids` as the reference library decodes it. Ids outside the vocabulary are
    /// skipped. `skipSpecialTokens` drops special added tokens (tokenizer.json) or control
    /// and unknown pieces (tokenizer.model).
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        switch backend {
        case .json(let p): return p.decode(ids, skipSpecialTokens: skipSpecialTokens)
        case .sentencePiece(let m, _, _): return m.decode(ids, skipSpecialTokens: skipSpecialTokens)
        }
    }

    /// The vocabulary string of `id` (e.g. "Ġthe", "▁the", "<0x0A>"), nil when unassigned.
    public func piece(_ id: Int) -> String? {
        switch backend {
        case .json(let p): return p.piece(id)
        case .sentencePiece(let m, _, _): return id >= 0 && id < m.pieceStrings.count ? m.pieceStrings[id] : nil
        }
    }

    /// The id of a vocabulary string (added tokens first), nil when absent.
    public func id(of piece: String) -> Int? {
        switch backend {
        case .json(let p): return p.id(of: piece)
        case .sentencePiece(let m, _, _):
            let r = m.reserved.find(piece)
            let id = r >= 0 ? r : m.mergeable.find(piece)
            return id >= 0 ? Int(id) : nil
        }
    }

    /// One past the largest id the tokenizer can produce or decode (model vocabulary and
    /// added tokens): the minimum embedding-matrix row count.
    public var vocabularySize: Int {
        switch backend {
        case .json(let p): return p.vocabularySize
        case .sentencePiece(let m, _, _): return m.pieces.count
        }
    }
}

// MARK: - tokenizer_config.json

/// The parts of tokenizer_config.json that change ids.
struct TokenizerConfig {
    var addBOS: Bool?
    var addEOS: Bool?
    var bosToken: String?
    var eosToken: String?
    var tokenizerClass: String?

    init() {}

    init(path: String) throws(FileError) {
        let json = try Tokenizer.readJSON(path)
        guard json.object != nil else { throw FileError(path, "not a JSON object") }
        addBOS = json["add_bos_token"]?.bool
        addEOS = json["add_eos_token"]?.bool
        bosToken = TokenizerConfig.tokenString(json["bos_token"])
        eosToken = TokenizerConfig.tokenString(json["eos_token"])
        tokenizerClass = json["tokenizer_class"]?.string
    }

    /// A token given as a string or as an AddedToken object `{"content": …}`.
    private static func tokenString(_ j: JSON?) -> String? {
        j?.string ?? j?["content"]?.string
    }
}
