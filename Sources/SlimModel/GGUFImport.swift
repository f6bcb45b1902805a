import Foundation
import SlimIO
import SlimTokenizer

/// A llama-architecture GGUF file seen as a Hugging Face `LlamaForCausalLM` checkpoint, in
/// memory: HF tensor names and shapes, F32 values (dequantized exactly, llama.cpp's q/k row
/// permutation undone), and the `config.json`, `tokenizer.json` and `tokenizer_config.json`
/// a Hugging Face directory would hold. Mirrors ../shared/scripts/gguf_to_hf.py, whose output
/// `write(directory:dtype:)` reproduces byte for byte (see GGUFImportWriter.swift), with two
/// deliberate exceptions: values are ggml's own, so a Q4_0 element with q = 8 in a block with
/// a negative scale is -0.0 where the numpy converter writes +0.0 (numerically equal); and
/// config.json's bos/eos ids are null when the GGUF names an id outside the vocabulary.
///
/// Everything that could make the import fail is checked in `init`: the architecture, the
/// hyper-parameter keys, every tensor name (unknown names such as Llama 3.1's
/// `rope_freqs.weight` are refused rather than dropped), every tensor type (F32, F16, BF16,
/// Q8_0, Q4_0, Q4_1), the q/k row counts, and the tokenizer metadata.
///
/// Memory: views returned by `tensor(_:)` retain this object and point into its storage, so
/// each tensor it dequantizes is cached (F32 tensors that need no un-permutation are served
/// straight from the memory map instead). Asking for every tensor therefore holds the whole
/// F32 model (4 bytes per parameter). `write` does not use the cache: it streams one tensor at
/// a time, and `floats(_:)` decodes without caching.
public final class GGUFImport: TensorSource, @unchecked Sendable {
    public let path: String
    /// The underlying GGUF file.
    public let gguf: GGUFFile
    /// config.json as gguf_to_hf.py writes it (`torch_dtype` "float32"; `write` substitutes
    /// the dtype it writes).
    public let config: JSON
    /// tokenizer.json equivalent (see GGUFTokenizerBuilder).
    public let tokenizerJSON: JSON
    /// tokenizer_config.json equivalent.
    public let tokenizerConfig: JSON
    /// The embedded tokenizer metadata, kept for `tokenizer()`.
    private let tokenizerSource: GGUFTokenizerBuilder
    /// HF tensor names in GGUF storage order.
    public let tensorNames: [String]

    /// One imported tensor.
    struct Entry {
        let hfName: String
        let ggufName: String
        /// Row-major HF shape.
        let shape: [Int]
        /// Heads to un-permute rows over (q: n_head, k: n_head_kv); nil for other tensors.
        let unpermuteHeads: Int?
        let type: GGMLType
        var elementCount: Int { shape.reduce(1, *) }
    }

    let entries: [Entry]
    private let entryIndex: [String: Int]
    private let lock = NSLock()
    /// Dequantized tensors handed out by `tensor(_:)`, freed in deinit.
    private var cache: [String: UnsafeMutableBufferPointer<Float>] = [:]

    // MARK: - Opening

    /// Opens and validates `path`. Errors are `GGUFError` for container problems and
    /// `FileError` (naming the file) for everything about the model.
    public convenience init(path: String) throws {
        try self.init(gguf: try GGUFFile(path: path))
    }

    /// Imports an opened GGUF file (from disk or an in-memory image); errors name `gguf.path`.
    public init(gguf: GGUFFile) throws {
        let path = gguf.path
        self.path = path
        self.gguf = gguf
        let meta = GGUFMetadata(file: gguf)

        let arch = try meta.requiredString("general.architecture")
        guard arch == "llama" else {
            throw FileError(path, "unsupported architecture \"\(arch)\": only llama GGUF files can be imported")
        }
        let hp = try LlamaHyperParameters(meta)

        // Tensors: names, types and q/k row counts, all before any data is touched.
        var entries: [Entry] = []
        var index: [String: Int] = [:]
        for info in gguf.tensorInfos {
            let hfName = try GGUFImport.hfName(info.name, path: path)
            guard info.type.isDequantizable else {
                if case .unknown(let id) = info.type {
                    throw FileError(path, "tensor \"\(info.name)\" has unknown ggml type id \(id)")
                }
                throw FileError(path, "tensor \"\(info.name)\" has type \(info.type); only F32, F16, BF16, Q8_0, Q4_0 and Q4_1 can be imported")
            }
            var heads: Int? = nil
            if info.name.hasSuffix(".attn_q.weight") { heads = hp.headCount }
            if info.name.hasSuffix(".attn_k.weight") { heads = hp.headCountKV }
            let shape = info.shape
            if let h = heads {
                let rows = shape.first ?? 0
                guard shape.count == 2, rows % (2 * h) == 0 else {
                    throw FileError(path, "tensor \"\(info.name)\" has shape \(shape): its \(rows) rows cannot be split into \(h) heads of rotary pairs")
                }
            }
            index[hfName] = entries.count
            entries.append(Entry(hfName: hfName, ggufName: info.name, shape: shape, unpermuteHeads: heads, type: info.type))
        }
        self.entries = entries
        entryIndex = index
        tensorNames = entries.map(\.hfName)

        let tokenizer = try GGUFTokenizerBuilder(meta: meta, contextLength: hp.contextLength)
        tokenizerJSON = tokenizer.tokenizerJSON()
        tokenizerConfig = tokenizer.tokenizerConfigJSON()
        tokenizerSource = tokenizer
        config = hp.configJSON(vocabSize: tokenizer.tokens.count,
                               tied: index["lm_head.weight"] == nil,
                               bos: meta.optionalInt("tokenizer.ggml.bos_token_id"),
                               eos: meta.optionalInt("tokenizer.ggml.eos_token_id"),
                               torchDtype: "float32")
    }

    // MARK: - Tokenizer

    /// The tokenizer embedded in the file, as llama.cpp runs it.
    ///
    /// A "llama" vocabulary becomes a SentencePiece BPE tokenizer over the stored scores
    /// (`GGUFTokenizerBuilder.sentencePieceVocabulary`), which is what sentencepiece and
    /// llama.cpp compute. The merge-list BPE of `tokenizerJSON` (transformers' conversion,
    /// kept for `write` because Hugging Face tools read it) differs from them at some runs of
    /// spaces. A "gpt2" vocabulary is the byte-level BPE of `tokenizerJSON`.
    /// BOS/EOS are added as `tokenizer.ggml.add_bos_token` / `add_eos_token` (or llama.cpp's
    /// defaults) say; the BOS piece must be a CONTROL token to be added, as in sentencepiece.
    /// - Throws: `FileError` naming this file for a vocabulary SentencePiece cannot use (no
    ///   unknown piece, duplicate pieces, an unknown token type).
    public func tokenizer() throws -> Tokenizer {
        guard let vocabulary = try tokenizerSource.sentencePieceVocabulary() else {
            return try Tokenizer(json: tokenizerJSON, path: path)
        }
        return try Tokenizer(sentencePiece: vocabulary, addBOS: tokenizerSource.addBOS, addEOS: tokenizerSource.addEOS,
                             path: path)
    }

    deinit {
        for buffer in cache.values { buffer.deallocate() }
    }

    // MARK: - Names

    /// The Hugging Face name of a llama.cpp tensor name (gguf_to_hf.py's `hf_name`).
    static func hfName(_ name: String, path: String) throws(FileError) -> String {
        switch name {
        case "token_embd.weight": return "model.embed_tokens.weight"
        case "output_norm.weight": return "model.norm.weight"
        case "output.weight": return "lm_head.weight"
        default: break
        }
        let parts = name.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        if parts.count == 3, parts[0] == "blk", let layer = Int(parts[1]), layer >= 0, String(layer) == parts[1],
           let hf = layerTensorNames[String(parts[2])] {
            return "model.layers.\(layer).\(hf)"
        }
        if name == "rope_freqs.weight" {
            throw FileError(path, "tensor \"rope_freqs.weight\" (Llama 3.1-style rope frequency factors) is not supported")
        }
        throw FileError(path, "unexpected tensor \"\(name)\" for a llama model")
    }

    private static let layerTensorNames: [String: String] = [
        "attn_norm.weight": "input_layernorm.weight",
        "ffn_norm.weight": "post_attention_layernorm.weight",
        "attn_q.weight": "self_attn.q_proj.weight",
        "attn_k.weight": "self_attn.k_proj.weight",
        "attn_v.weight": "self_attn.v_proj.weight",
        "attn_output.weight": "self_attn.o_proj.weight",
        "ffn_gate.weight": "mlp.gate_proj.weight",
        "ffn_up.weight": "mlp.up_proj.weight",
        "ffn_down.weight": "mlp.down_proj.weight",
    ]

    // MARK: - Tensor access

    /// The row-major HF shape of `name`, without decoding anything.
    public func shape(_ name: String) -> [Int]? {
        entryIndex[name].map { entries[$0].shape }
    }

    /// The ggml type `name` is stored as in the GGUF file.
    public func storedType(_ name: String) -> GGMLType? {
        entryIndex[name].map { entries[$0].type }
    }

    /// Imported tensors are served as F32 whatever their stored ggml type; this answers from
    /// the tensor table without decoding anything.
    public func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])? {
        shape(name).map { (DType.f32, $0) }
    }

    /// An F32 view of tensor `name` (HF name); the view retains this object. Decoded once and
    /// cached; see the memory note on the type.
    public func tensor(_ name: String) -> TensorView? {
        guard let i = entryIndex[name] else { return nil }
        let e = entries[i]
        if e.type == .f32, e.unpermuteHeads == nil, let view = gguf.tensor(e.ggufName) {
            // The GGUFFile owns the mapping; this object holds it, so either owner works.
            return TensorView(name: name, dtype: .f32, shape: e.shape, bytes: view.bytes, owner: self)
        }
        lock.lock()
        defer { lock.unlock() }
        if let cached = cache[name] {
            return TensorView(name: name, dtype: .f32, shape: e.shape, bytes: UnsafeRawBufferPointer(cached), owner: self)
        }
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: e.elementCount)
        do {
            try decode(e, into: buffer)
        } catch {
            // init checked every type, so decoding cannot fail; keep the contract anyway.
            buffer.deallocate()
            return nil
        }
        cache[name] = buffer
        return TensorView(name: name, dtype: .f32, shape: e.shape, bytes: UnsafeRawBufferPointer(buffer), owner: self)
    }

    /// Tensor `name` (HF name) as F32 values in row-major order, decoded afresh (not cached).
    public func floats(_ name: String) throws -> [Float] {
        guard let i = entryIndex[name] else { throw FileError(path, "no tensor named \"\(name)\"") }
        let e = entries[i]
        return try [Float](unsafeUninitializedCapacity: e.elementCount) { buffer, count in
            try decode(e, into: buffer)
            count = buffer.count
        }
    }

    /// Dequantizes `e` into `out` (exactly `e.elementCount` values) and undoes the q/k
    /// permutation in place.
    func decode(_ e: Entry, into out: UnsafeMutableBufferPointer<Float>) throws {
        try gguf.dequantize(e.ggufName, into: out)
        if let heads = e.unpermuteHeads {
            let scratch = UnsafeMutableBufferPointer<Float>.allocate(capacity: out.count)
            defer { scratch.deallocate() }
            _ = scratch.initialize(from: out)
            GGUFImport.unpermuteRows(from: UnsafeBufferPointer(scratch), into: out, rows: e.shape[0], heads: heads)
        }
    }

    /// Inverse of llama.cpp's q/k permutation (gguf_to_hf.py's `unpermute`): viewing the rows
    /// as [heads, rows/heads/2, 2], the last two axes are swapped, i.e. within each head output
    /// row `a * half + b` is input row `b * 2 + a` (a in 0..<2, b in 0..<half). `rows` must be
    /// a multiple of 2·heads and `src.count` a multiple of `rows`.
    static func unpermuteRows(from src: UnsafeBufferPointer<Float>, into dst: UnsafeMutableBufferPointer<Float>,
                              rows: Int, heads: Int) {
        precondition(rows % (2 * heads) == 0 && src.count == dst.count && src.count % rows == 0)
        guard let s = src.baseAddress, let d = dst.baseAddress else { return }
        let cols = src.count / rows
        let perHead = rows / heads
        let half = perHead / 2
        for h in 0..<heads {
            for a in 0..<2 {
                for b in 0..<half {
                    let from = h * perHead + b * 2 + a
                    let to = h * perHead + a * half + b
                    (d + to * cols).update(from: s + from * cols, count: cols)
                }
            }
        }
    }
}

// MARK: - Hyper-parameters and config.json

/// The llama.* keys gguf_to_hf.py reads, validated.
struct LlamaHyperParameters {
    let embeddingLength: Int
    let feedForwardLength: Int
    let blockCount: Int
    let headCount: Int
    let headCountKV: Int
    let contextLength: Int
    /// The f32 epsilon widened to Double (gguf_to_hf.py: float(np.float32(eps))).
    let rmsNormEps: Double
    let ropeTheta: Double

    init(_ meta: GGUFMetadata) throws(FileError) {
        embeddingLength = try meta.positiveInt("llama.embedding_length")
        feedForwardLength = try meta.positiveInt("llama.feed_forward_length")
        blockCount = try meta.positiveInt("llama.block_count")
        headCount = try meta.positiveInt("llama.attention.head_count")
        headCountKV = try meta.optionalPositiveInt("llama.attention.head_count_kv") ?? headCount
        contextLength = try meta.optionalPositiveInt("llama.context_length") ?? 2048
        let eps = try meta.requiredDouble("llama.attention.layer_norm_rms_epsilon")
        rmsNormEps = Double(Float(eps))
        ropeTheta = try meta.optionalDouble("llama.rope.freq_base") ?? 10000
        guard rmsNormEps > 0, rmsNormEps.isFinite else {
            throw meta.fail("llama.attention.layer_norm_rms_epsilon must be a positive number, found \(eps)")
        }
        guard ropeTheta > 0, ropeTheta.isFinite else {
            throw meta.fail("llama.rope.freq_base must be a positive number, found \(ropeTheta)")
        }
    }

    /// config.json with gguf_to_hf.py's keys, order and values. Token ids outside the
    /// vocabulary (llama.cpp writes 0xFFFFFFFF for "none") become null.
    func configJSON(vocabSize: Int, tied: Bool, bos: Int?, eos: Int?, torchDtype: String) -> JSON {
        func id(_ v: Int?) -> JSON {
            guard let v, v >= 0, v < vocabSize else { return .null }
            return .int(Int64(v))
        }
        return .object(JSONObject([
            ("architectures", .array([.string("LlamaForCausalLM")])),
            ("model_type", .string("llama")),
            ("hidden_size", .int(Int64(embeddingLength))),
            ("intermediate_size", .int(Int64(feedForwardLength))),
            ("num_hidden_layers", .int(Int64(blockCount))),
            ("num_attention_heads", .int(Int64(headCount))),
            ("num_key_value_heads", .int(Int64(headCountKV))),
            ("head_dim", .int(Int64(embeddingLength / headCount))),
            ("max_position_embeddings", .int(Int64(contextLength))),
            ("rms_norm_eps", .double(rmsNormEps)),
            ("rope_theta", .double(ropeTheta)),
            ("vocab_size", .int(Int64(vocabSize))),
            ("tie_word_embeddings", .bool(tied)),
            ("hidden_act", .string("silu")),
            ("bos_token_id", id(bos)),
            ("eos_token_id", id(eos)),
            ("torch_dtype", .string(torchDtype)),
        ]))
    }
}

// MARK: - Typed metadata access

/// Typed access to GGUF metadata with errors that name the file and the key.
struct GGUFMetadata {
    let file: GGUFFile
    var path: String { file.path }

    func fail(_ message: String) -> FileError { FileError(path, message) }

    func value(_ key: String) -> GGUFValue? { file.value(key) }

    func requiredString(_ key: String) throws(FileError) -> String {
        guard let v = value(key) else { throw fail("missing metadata key \"\(key)\"") }
        guard let s = v.string else { throw fail("metadata key \"\(key)\" must be a string, found \(v.typeName)") }
        return s
    }

    func optionalString(_ key: String) throws(FileError) -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw fail("metadata key \"\(key)\" must be a string, found \(v.typeName)") }
        return s
    }

    func optionalPositiveInt(_ key: String) throws(FileError) -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.int else { throw fail("metadata key \"\(key)\" must be an integer, found \(v.typeName)") }
        guard i > 0 else { throw fail("metadata key \"\(key)\" must be positive, found \(i)") }
        return i
    }

    func positiveInt(_ key: String) throws(FileError) -> Int {
        guard let i = try optionalPositiveInt(key) else { throw fail("missing metadata key \"\(key)\"") }
        return i
    }

    /// An integer value if present and an integer (any width); nil otherwise.
    func optionalInt(_ key: String) -> Int? { value(key)?.int }

    func optionalDouble(_ key: String) throws(FileError) -> Double? {
        guard let v = value(key) else { return nil }
        guard let d = v.double else { throw fail("metadata key \"\(key)\" must be a number, found \(v.typeName)") }
        return d
    }

    func requiredDouble(_ key: String) throws(FileError) -> Double {
        guard let d = try optionalDouble(key) else { throw fail("missing metadata key \"\(key)\"") }
        return d
    }

    func optionalBool(_ key: String) throws(FileError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.bool else { throw fail("metadata key \"\(key)\" must be a bool, found \(v.typeName)") }
        return b
    }

    /// An array whose elements all satisfy `convert`; nil when absent.
    func optionalArray<T>(_ key: String, of what: String, _ convert: (GGUFValue) -> T?) throws(FileError) -> [T]? {
        guard let v = value(key) else { return nil }
        guard let items = v.array else { throw fail("metadata key \"\(key)\" must be an array of \(what), found \(v.typeName)") }
        var out: [T] = []
        out.reserveCapacity(items.count)
        for (i, item) in items.enumerated() {
            guard let x = convert(item) else {
                throw fail("metadata key \"\(key)\" must be an array of \(what), element \(i) is \(item.typeName)")
            }
            out.append(x)
        }
        return out
    }
}
