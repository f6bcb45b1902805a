import SlimIO

// A tokenizer.json tokenizer: HF `tokenizers`' pipeline of added-token extraction,
// normalizer, pre-tokenizer, BPE model and post-processor, and its decoder chain.

final class JSONPipeline: @unchecked Sendable {
    let normalizers: [NormalizerStep]
    let preTokenizers: [PreTokenizerStep]
    let model: BPEModel
    let added: AddedVocabulary
    private(set) var post: PostProcessor
    let decoders: [DecoderStep]
    let kindDescription: String

    init(json: JSON, path: String) throws(FileError) {
        guard json.object != nil else { throw FileError(path, "tokenizer.json is not a JSON object") }
        guard let modelJSON = json["model"], modelJSON.object != nil else { throw FileError(path, "no \"model\" object") }
        let type = modelJSON["type"]?.string ?? (modelJSON["merges"] != nil ? "BPE" : "?")
        guard type == "BPE" else {
            throw FileError(path, type == "?" ? "model has no \"type\" and no merges" : "unsupported tokenizer model '\(type)'")
        }
        if let t = json["truncation"], !t.isNull { throw FileError(path, "truncation settings are not supported") }
        if let p = json["padding"], !p.isNull { throw FileError(path, "padding settings are not supported") }
        normalizers = try NormalizerStep.parse(json["normalizer"], path: path)
        preTokenizers = try PreTokenizerStep.parse(json["pre_tokenizer"], path: path)
        model = try BPEModel(json: modelJSON, path: path)
        let vocab = model.vocab
        added = try AddedVocabulary(json: json["added_tokens"], normalizers: normalizers, vocabCount: vocab.count, vocabID: { s in
            let id = vocab.find(s)
            return id >= 0 ? id : nil
        }, path: path)
        if !model.hasMerges {
            // Without merges a BPE can only emit single characters: a vocabulary with longer
            // ordinary tokens means a broken conversion (e.g. scores without merges).
            for (k, token) in model.idToToken.enumerated() {
                guard let token, token.unicodeScalars.count > 1, !model.isByteOrUnknown(Int32(k)),
                      added.id(forContent: token) == nil else { continue }
                throw FileError(path, "BPE model has no merges but its vocabulary has multi-character tokens "
                    + "(e.g. \(JSON.string(token).serialized())): merges are required")
            }
        }
        post = try PostProcessor.parse(json["post_processor"], path: path)
        decoders = try DecoderStep.parse(json["decoder"], path: path)

        let isByteLevel = preTokenizers.contains { if case .byteLevel = $0 { return true }; return false }
        let isMetaspace = preTokenizers.contains { if case .metaspace = $0 { return true }; return false }
            || normalizers.contains { if case .prepend(let p) = $0 { return p == metaspaceUTF8 }; return false }
        kindDescription = isByteLevel ? "byte-level BPE (tokenizer.json)"
            : isMetaspace ? "SentencePiece-style BPE (tokenizer.json)" : "BPE (tokenizer.json)"
    }

    /// True for the SentencePiece-style BPE files that converters produce from a
    /// tokenizer.model: byte fallback plus Metaspace pre-tokenization or the legacy
    /// Prepend("▁") + Replace(" ", "▁") normalizer.
    static func isSentencePieceStyle(_ json: JSON) -> Bool {
        guard let model = json["model"], (model["type"]?.string ?? "BPE") == "BPE", model["byte_fallback"]?.bool == true else {
            return false
        }
        func types(_ j: JSON?, _ listKey: String) -> [JSON] {
            guard let j, !j.isNull else { return [] }
            if j["type"]?.string == "Sequence" { return (j[listKey]?.array ?? []).flatMap { types($0, listKey) } }
            return [j]
        }
        if types(json["pre_tokenizer"], "pretokenizers").contains(where: { $0["type"]?.string == "Metaspace" }) { return true }
        let norms = types(json["normalizer"], "normalizers")
        let prepends = norms.contains { $0["type"]?.string == "Prepend" && $0["prepend"]?.string == "\u{2581}" }
        let replaces = norms.contains { $0["type"]?.string == "Replace" && $0["pattern"]?["String"]?.string == " " && $0["content"]?.string == "\u{2581}" }
        return prepends && replaces
    }

    /// Replaces the post-processor (tokenizer_config.json flags of Llama tokenizers).
    func overridePost(_ p: PostProcessor) { post = p }

    // MARK: Encoding

    func encode(_ text: String, addSpecialTokens: Bool) -> [Int32] {
        var t = SegmentedText(text)
        added.extract(from: &t, normalizedPass: false)
        if !normalizers.isEmpty {
            t.rewriteText { input, _, out, _ in out += normalizers.normalize(Array(input)) }
        }
        added.extract(from: &t, normalizedPass: true)
        for step in preTokenizers { step.apply(to: &t) }

        var ids = [Int32]()
        ids.reserveCapacity(t.bytes.count / 3 + post.prefix.count + post.suffix.count + 4)
        if addSpecialTokens { ids += post.prefix }
        var scratch = BPEScratch()
        t.bytes.withUnsafeBufferPointer { b in
            for seg in t.segments {
                if !seg.isText {
                    ids.append(seg.token)
                } else if let p = b.baseAddress {
                    model.tokenize(p, seg.start, seg.end, into: &ids, scratch: &scratch)
                }
            }
        }
        if addSpecialTokens { ids += post.suffix }
        return ids
    }

    // MARK: Decoding and lookup

    func piece(_ id: Int) -> String? {
        guard let i = Int32(exactly: id), i >= 0 else { return nil }
        if let t = added.token(forID: i) { return t.content }
        return id < model.idToToken.count ? model.idToToken[id] : nil
    }

    func id(of piece: String) -> Int? {
        if let id = added.id(forContent: piece) { return Int(id) }
        let id = model.vocab.find(piece)
        return id >= 0 ? Int(id) : nil
    }

    var vocabularySize: Int {
        max(model.idToToken.count, (added.tokens.map { Int($0.id) }.max() ?? -1) + 1)
    }

    /// `Tokenizer::decode`: ids → token strings (unknown ids dropped, special tokens dropped
    /// on request) → decoder chain → concatenation; without a decoder tokens join with " ".
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            guard let t = piece(id) else { continue }
            if skipSpecialTokens && added.isSpecial(content: t) { continue }
            tokens.append(t)
        }
        if decoders.isEmpty { return tokens.joined(separator: " ") }
        for step in decoders { tokens = step.apply(tokens) }
        return tokens.joined()
    }
}
