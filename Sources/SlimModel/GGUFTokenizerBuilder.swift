import SlimIO
import SlimTokenizer

/// Rebuilds a Hugging Face `tokenizer.json` and `tokenizer_config.json` from the tokenizer a
/// GGUF file embeds (`tokenizer.ggml.*`).
///
/// - `tokenizer.ggml.model` "llama" (SentencePiece BPE: tokens, scores, token types) becomes
///   the structure transformers' Llama converter writes (compare
///   ../shared/models/stories260K/tokenizer.json): a BPE model with `byte_fallback` and
///   `fuse_unk`, merges derived from the vocabulary and scores exactly as transformers'
///   `generate_merges` does, a Metaspace pre-tokenizer (prepend "first", or "never" when
///   `tokenizer.ggml.add_space_prefix` is false), and the Replace/ByteFallback/Fuse/Strip
///   decoder. Unlike that file (transformers 5 leaves it null), `model.unk_token` names the
///   unknown piece when there is one, so characters without a byte token encode as `<unk>`
///   the way SentencePiece and llama.cpp do instead of vanishing.
/// - "gpt2" (byte-level BPE: tokens and merges) becomes a byte-level BPE with the
///   pre-tokenizer llama.cpp associates with `tokenizer.ggml.pre`: "default"/"gpt2"/"gpt-2"
///   or no key → ByteLevel with the GPT-2 regex; "smollm"/"starcoder"/"refact" → Digits
///   (individual) + ByteLevel (compare ../shared/models/smollm2-135m/tokenizer.json);
///   "llama-bpe"/"llama3"/"llama-v3" → Llama 3's Split regex + ByteLevel without regex, with
///   `ignore_merges`. Other values are refused: guessing would silently change tokenization.
///
/// Added tokens: every token of type UNKNOWN (2) or CONTROL (3) is a special added token;
/// USER_DEFINED (4) tokens are added tokens, special only when they are the bos/eos/unk/pad
/// token. Special ids outside the vocabulary (0xFFFFFFFF means "none") are ignored; for
/// SentencePiece the llama.cpp defaults (unk 0, bos 1, eos 2) apply when a key is absent or
/// out of range, as in llama.cpp.
/// `add_bos_token`/`add_eos_token` follow the GGUF keys, else llama.cpp's defaults
/// (SentencePiece and the Llama 3 family add BOS), and shape the TemplateProcessing
/// post-processor the way transformers' `update_post_processor` does.
struct GGUFTokenizerBuilder {
    enum Model: Equatable {
        case sentencePiece
        case byteLevel(pre: String)
    }

    let path: String
    let model: Model
    let tokens: [String]
    let scores: [Float]
    let types: [Int]?
    let merges: [(String, String)]
    let bos: Int?
    let eos: Int?
    let unk: Int?
    let pad: Int?
    let addBOS: Bool
    let addEOS: Bool
    let addSpacePrefix: Bool
    let contextLength: Int
    let chatTemplate: String?

    static let llama3Family: Set<String> = ["llama-bpe", "llama3", "llama-v3"]
    static let digitsFamily: Set<String> = ["smollm", "starcoder", "refact"]
    static let gpt2Family: Set<String> = ["default", "gpt2", "gpt-2"]

    static let llama3Regex = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init(meta: GGUFMetadata, contextLength: Int) throws(FileError) {
        path = meta.path
        self.contextLength = contextLength
        let kind = try meta.requiredString("tokenizer.ggml.model")
        switch kind {
        case "llama":
            model = .sentencePiece
        case "gpt2":
            let pre = try meta.optionalString("tokenizer.ggml.pre") ?? "default"
            guard Self.gpt2Family.contains(pre) || Self.digitsFamily.contains(pre) || Self.llama3Family.contains(pre) else {
                throw meta.fail("unsupported tokenizer.ggml.pre \"\(pre)\" (supported: "
                    + (Self.gpt2Family.union(Self.digitsFamily).union(Self.llama3Family)).sorted().joined(separator: ", ") + ")")
            }
            model = .byteLevel(pre: pre)
        default:
            throw meta.fail("unsupported tokenizer.ggml.model \"\(kind)\" (only \"llama\" SentencePiece and \"gpt2\" byte-level BPE)")
        }

        guard let tokens = try meta.optionalArray("tokenizer.ggml.tokens", of: "strings", { $0.string }), !tokens.isEmpty else {
            throw meta.fail("missing or empty metadata key \"tokenizer.ggml.tokens\"")
        }
        self.tokens = tokens
        let n = tokens.count
        types = try meta.optionalArray("tokenizer.ggml.token_type", of: "integers", { $0.int })
        if let types, types.count != n {
            throw meta.fail("tokenizer.ggml.token_type has \(types.count) entries for \(n) tokens")
        }
        let scores = try meta.optionalArray("tokenizer.ggml.scores", of: "numbers", { $0.double.map(Float.init) })
        if let scores {
            guard scores.count == n else { throw meta.fail("tokenizer.ggml.scores has \(scores.count) entries for \(n) tokens") }
            if let bad = scores.firstIndex(where: { $0.isNaN }) { throw meta.fail("tokenizer.ggml.scores[\(bad)] is NaN") }
        }
        self.scores = scores ?? [Float](repeating: 0, count: n)

        // llama.cpp keeps the default when a key names an id outside the vocabulary.
        func special(_ key: String, default d: Int?) -> Int? {
            if let v = meta.optionalInt("tokenizer.ggml.\(key)"), v >= 0, v < n { return v }
            guard let d, d < n else { return nil }
            return d
        }
        let spm = model == .sentencePiece
        bos = special("bos_token_id", default: spm ? 1 : nil)
        eos = special("eos_token_id", default: spm ? 2 : nil)
        unk = special("unknown_token_id", default: spm ? 0 : nil)
        pad = special("padding_token_id", default: nil)

        var defaultAddBOS = spm
        if case .byteLevel(let pre) = model, Self.llama3Family.contains(pre) { defaultAddBOS = true }
        addBOS = try meta.optionalBool("tokenizer.ggml.add_bos_token") ?? defaultAddBOS
        addEOS = try meta.optionalBool("tokenizer.ggml.add_eos_token") ?? false
        addSpacePrefix = try meta.optionalBool("tokenizer.ggml.add_space_prefix") ?? true
        chatTemplate = try meta.optionalString("tokenizer.chat_template")
        if addBOS && bos == nil { throw meta.fail("tokenizer adds a BOS token but tokenizer.ggml.bos_token_id names none") }
        if addEOS && eos == nil { throw meta.fail("tokenizer adds an EOS token but tokenizer.ggml.eos_token_id names none") }

        if spm {
            merges = Self.sentencePieceMerges(tokens: tokens, scores: self.scores)
        } else {
            guard let raw = try meta.optionalArray("tokenizer.ggml.merges", of: "strings", { $0.string }) else {
                throw meta.fail("missing metadata key \"tokenizer.ggml.merges\" for a gpt2 tokenizer")
            }
            merges = try Self.parseMerges(raw, vocab: Set(tokens.map(ExactKey.init)), meta: meta)
        }
    }

    // MARK: - SentencePiece vocabulary

    /// The vocabulary of a "llama" tokenizer as SentencePiece (and llama.cpp, which runs the
    /// same algorithm on the scores) sees it; nil for byte-level ("gpt2") tokenizers.
    ///
    /// Token types follow llama.cpp's enum (1 normal, 2 unknown, 3 control, 4 user-defined,
    /// 5 unused, 6 byte; 0 "undefined" counts as normal); without `tokenizer.ggml.token_type`
    /// the unknown token is UNKNOWN, BOS/EOS are CONTROL and the rest NORMAL. Byte fallback is
    /// on when the vocabulary has byte pieces. Whitespace is never collapsed (llama.cpp does not
    /// either); `tokenizer.ggml.add_space_prefix` gives the dummy prefix.
    /// - Throws: `FileError` for a token type outside 0...6.
    func sentencePieceVocabulary() throws(FileError) -> SentencePieceVocabulary? {
        guard model == .sentencePiece else { return nil }
        var pieceTypes: [SentencePieceType] = []
        pieceTypes.reserveCapacity(tokens.count)
        if let types {
            for (i, t) in types.enumerated() {
                guard let type = t == 0 ? .normal : SentencePieceType(rawValue: t) else {
                    throw FileError(path, "tokenizer.ggml.token_type[\(i)] is \(t), not a SentencePiece piece type (0-6)")
                }
                pieceTypes.append(type)
            }
        } else {
            pieceTypes = [SentencePieceType](repeating: .normal, count: tokens.count)
            if let unk { pieceTypes[unk] = .unknown }
            for id in [bos, eos].compactMap({ $0 }) where id != unk { pieceTypes[id] = .control }
        }
        return SentencePieceVocabulary(
            pieces: tokens, scores: scores, types: pieceTypes, byteFallback: pieceTypes.contains(.byte),
            addDummyPrefix: addSpacePrefix, removeExtraWhitespaces: false,
            bosPiece: bos.map { tokens[$0] } ?? "<s>", eosPiece: eos.map { tokens[$0] } ?? "</s>")
    }

    // MARK: - Merges

    /// transformers' `generate_merges(vocab, vocab_scores)`: for every piece (first occurrence
    /// order, last score), each split into two pieces that are both in the vocabulary, ordered
    /// within the piece by the ids of (left, right); then all of them stably sorted by
    /// (score, code points of left, code points of right), descending. Pieces are keyed by
    /// their exact code points, as in Python (canonically equivalent pieces stay distinct).
    static func sentencePieceMerges(tokens: [String], scores: [Float]) -> [(String, String)] {
        var vocab: [ExactKey: Int] = [:]
        var scoreOf: [ExactKey: Float] = [:]
        var order: [String] = []
        vocab.reserveCapacity(tokens.count)
        scoreOf.reserveCapacity(tokens.count)
        for (i, t) in tokens.enumerated() {
            let key = ExactKey(t)
            if vocab.updateValue(i, forKey: key) == nil { order.append(t) }
            scoreOf[key] = scores[i]
        }
        struct Candidate {
            let left: String, right: String
            let score: Float
            let leftLength: Int, rightLength: Int
            let seq: Int
        }
        var all: [Candidate] = []
        var local: [(left: String, right: String, leftID: Int, rightID: Int, leftLength: Int)] = []
        for piece in order {
            let scalars = piece.unicodeScalars
            let length = scalars.count
            guard length > 1 else { continue }
            local.removeAll(keepingCapacity: true)
            var idx = scalars.index(after: scalars.startIndex)
            var split = 1
            while idx != scalars.endIndex {
                let l = String(scalars[..<idx]), r = String(scalars[idx...])
                if let li = vocab[ExactKey(l)], let ri = vocab[ExactKey(r)] { local.append((l, r, li, ri, split)) }
                idx = scalars.index(after: idx)
                split += 1
            }
            local.sort { ($0.leftID, $0.rightID) < ($1.leftID, $1.rightID) }
            let score = scoreOf[ExactKey(piece)] ?? 0
            for c in local {
                all.append(Candidate(left: c.left, right: c.right, score: score, leftLength: c.leftLength,
                                     rightLength: length - c.leftLength, seq: all.count))
            }
        }
        all.sort { a, b in
            if a.score != b.score { return a.score > b.score }
            if a.leftLength != b.leftLength { return a.leftLength > b.leftLength }
            if a.rightLength != b.rightLength { return a.rightLength > b.rightLength }
            return a.seq < b.seq  // Python's sort is stable, reverse=True included
        }
        return all.map { ($0.left, $0.right) }
    }

    /// "left right" strings split at the first space after the first character (llama.cpp's
    /// `word.find(' ', 1)`); both halves and their concatenation must be tokens (compared
    /// byte for byte).
    static func parseMerges(_ raw: [String], vocab: Set<ExactKey>, meta: GGUFMetadata) throws(FileError) -> [(String, String)] {
        var out: [(String, String)] = []
        out.reserveCapacity(raw.count)
        for (i, m) in raw.enumerated() {
            let u = m.utf8
            guard !u.isEmpty, let space = u.dropFirst().firstIndex(of: UInt8(ascii: " ")) else {
                throw meta.fail("tokenizer.ggml.merges[\(i)] \"\(m)\" is not two tokens separated by a space")
            }
            let l = String(m[..<space]), r = String(m[m.index(after: space)...])
            guard vocab.contains(ExactKey(l)), vocab.contains(ExactKey(r)), vocab.contains(ExactKey(l + r)) else {
                throw meta.fail("tokenizer.ggml.merges[\(i)] \"\(m)\" uses or makes a token that is not in the vocabulary")
            }
            out.append((l, r))
        }
        return out
    }

    // MARK: - tokenizer.json

    func tokenizerJSON() -> JSON {
        let spm = model == .sentencePiece
        var added: [JSON] = []
        let specialIDs = Set([bos, eos, unk, pad].compactMap { $0 })
        if let types {
            for (i, t) in types.enumerated() where t == 2 || t == 3 || t == 4 {
                added.append(addedToken(i, special: t != 4 || specialIDs.contains(i)))
            }
        } else {
            for i in specialIDs.sorted() { added.append(addedToken(i, special: true)) }
        }

        var vocab = JSONObject()
        for (i, t) in tokens.enumerated() { vocab[t] = .int(Int64(i)) }
        let mergesJSON = JSON.array(merges.map { .array([.string($0.0), .string($0.1)]) })

        let modelJSON: JSON
        let pre: JSON
        let decoder: JSON
        if spm {
            modelJSON = .object(JSONObject([
                ("type", "BPE"), ("dropout", .null), ("unk_token", unk.map { .string(tokens[$0]) } ?? .null),
                ("continuing_subword_prefix", .null), ("end_of_word_suffix", .null),
                ("fuse_unk", true), ("byte_fallback", true), ("ignore_merges", false),
                ("vocab", .object(vocab)), ("merges", mergesJSON),
            ]))
            pre = .object(JSONObject([
                ("type", "Metaspace"), ("replacement", "\u{2581}"),
                ("prepend_scheme", .string(addSpacePrefix ? "first" : "never")), ("split", false),
            ]))
            var steps: [JSON] = [
                .object(JSONObject([("type", "Replace"), ("pattern", .object(JSONObject([("String", "\u{2581}")]))), ("content", " ")])),
                .object(JSONObject([("type", "ByteFallback")])),
                .object(JSONObject([("type", "Fuse")])),
            ]
            if addSpacePrefix {
                steps.append(.object(JSONObject([("type", "Strip"), ("content", " "), ("start", 1), ("stop", 0)])))
            }
            decoder = .object(JSONObject([("type", "Sequence"), ("decoders", .array(steps))]))
        } else {
            guard case .byteLevel(let preName) = model else { preconditionFailure("unreachable") }
            let llama3 = Self.llama3Family.contains(preName)
            modelJSON = .object(JSONObject([
                ("type", "BPE"), ("dropout", .null), ("unk_token", .null),
                ("continuing_subword_prefix", ""), ("end_of_word_suffix", ""),
                ("fuse_unk", false), ("byte_fallback", false), ("ignore_merges", .bool(llama3)),
                ("vocab", .object(vocab)), ("merges", mergesJSON),
            ]))
            pre = Self.byteLevelPreTokenizer(preName)
            decoder = Self.byteLevel(addPrefixSpace: true, useRegex: true)
        }
        return .object(JSONObject([
            ("version", "1.0"), ("truncation", .null), ("padding", .null),
            ("added_tokens", .array(added)),
            ("normalizer", .null),
            ("pre_tokenizer", pre),
            ("post_processor", postProcessor()),
            ("decoder", decoder),
            ("model", modelJSON),
        ]))
    }

    private func addedToken(_ id: Int, special: Bool) -> JSON {
        .object(JSONObject([
            ("id", .int(Int64(id))), ("content", .string(tokens[id])), ("single_word", false),
            ("lstrip", false), ("rstrip", false), ("normalized", false), ("special", .bool(special)),
        ]))
    }

    static func byteLevel(addPrefixSpace: Bool, useRegex: Bool) -> JSON {
        .object(JSONObject([
            ("type", "ByteLevel"), ("add_prefix_space", .bool(addPrefixSpace)),
            ("trim_offsets", true), ("use_regex", .bool(useRegex)),
        ]))
    }

    static func byteLevelPreTokenizer(_ pre: String) -> JSON {
        if digitsFamily.contains(pre) {
            return .object(JSONObject([("type", "Sequence"), ("pretokenizers", .array([
                .object(JSONObject([("type", "Digits"), ("individual_digits", true)])),
                byteLevel(addPrefixSpace: false, useRegex: true),
            ]))]))
        }
        if llama3Family.contains(pre) {
            return .object(JSONObject([("type", "Sequence"), ("pretokenizers", .array([
                .object(JSONObject([
                    ("type", "Split"), ("pattern", .object(JSONObject([("Regex", .string(llama3Regex))]))),
                    ("behavior", "Isolated"), ("invert", false),
                ])),
                byteLevel(addPrefixSpace: false, useRegex: false),
            ]))]))
        }
        return byteLevel(addPrefixSpace: false, useRegex: true)
    }

    /// transformers' `update_post_processor`: "[bos:0] $A:0 [eos:0]" and
    /// "… [bos:1] $B:1 [eos:1]".
    private func postProcessor() -> JSON {
        func specialToken(_ id: Int, _ typeID: Int64) -> JSON {
            .object(JSONObject([("SpecialToken", .object(JSONObject([("id", .string(tokens[id])), ("type_id", .int(typeID))])))]))
        }
        func sequence(_ name: String, _ typeID: Int64) -> JSON {
            .object(JSONObject([("Sequence", .object(JSONObject([("id", .string(name)), ("type_id", .int(typeID))])))]))
        }
        let b = addBOS ? bos : nil, e = addEOS ? eos : nil
        var single: [JSON] = []
        if let b { single.append(specialToken(b, 0)) }
        single.append(sequence("A", 0))
        if let e { single.append(specialToken(e, 0)) }
        var pair = single
        if let b { pair.append(specialToken(b, 1)) }
        pair.append(sequence("B", 1))
        if let e { pair.append(specialToken(e, 1)) }
        var specials = JSONObject()
        for id in [b, e].compactMap({ $0 }) {
            specials[tokens[id]] = .object(JSONObject([
                ("id", .string(tokens[id])), ("ids", .array([.int(Int64(id))])), ("tokens", .array([.string(tokens[id])])),
            ]))
        }
        return .object(JSONObject([
            ("type", "TemplateProcessing"), ("single", .array(single)), ("pair", .array(pair)),
            ("special_tokens", .object(specials)),
        ]))
    }

    // MARK: - tokenizer_config.json

    func tokenizerConfigJSON() -> JSON {
        func token(_ id: Int?) -> JSON { id.map { .string(tokens[$0]) } ?? .null }
        var o = JSONObject([
            ("add_bos_token", .bool(addBOS)),
            ("add_eos_token", .bool(addEOS)),
            ("bos_token", token(bos)),
            ("eos_token", token(eos)),
            ("unk_token", token(unk)),
            ("pad_token", token(pad)),
            ("model_max_length", .int(Int64(contextLength))),
            ("clean_up_tokenization_spaces", false),
            ("tokenizer_class", .string(model == .sentencePiece ? "LlamaTokenizerFast" : "PreTrainedTokenizerFast")),
        ])
        if let chatTemplate { o["chat_template"] = .string(chatTemplate) }
        return .object(o)
    }
}
