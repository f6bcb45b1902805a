import SlimIO

// SentencePiece BPE models (tokenizer.model, a serialized ModelProto), reproducing the
// `sentencepiece` library: see SentencePieceBPE.swift for the encoder and decoder.

/// Piece types of sentencepiece_model.proto (also used by GGUF's `tokenizer.ggml.token_type`).
public enum SentencePieceType: Int, Sendable {
    case normal = 1
    case unknown = 2
    case control = 3
    case userDefined = 4
    case unused = 5
    case byte = 6
}

/// A SentencePiece BPE vocabulary and normalizer settings, for building a tokenizer without
/// a tokenizer.model file (e.g. from a GGUF file's `tokenizer.ggml.*` arrays).
public struct SentencePieceVocabulary: Sendable {
    public var pieces: [String]
    public var scores: [Float]
    public var types: [SentencePieceType]
    /// Unknown characters become `<0xXX>` byte pieces instead of the unknown piece.
    public var byteFallback: Bool
    public var addDummyPrefix: Bool
    public var removeExtraWhitespaces: Bool
    public var escapeWhitespaces: Bool
    public var treatWhitespaceAsSuffix: Bool
    /// Pieces for BOS/EOS lookup (sentencepiece's `bos_id()` is the id of this piece when it
    /// is a control piece).
    public var bosPiece: String
    public var eosPiece: String
    /// Surface of the unknown piece when decoding.
    public var unknownSurface: String

    public init(pieces: [String], scores: [Float], types: [SentencePieceType], byteFallback: Bool,
                addDummyPrefix: Bool = true, removeExtraWhitespaces: Bool = false, escapeWhitespaces: Bool = true,
                treatWhitespaceAsSuffix: Bool = false, bosPiece: String = "<s>", eosPiece: String = "</s>",
                unknownSurface: String = " \u{2047} ") {
        self.pieces = pieces
        self.scores = scores
        self.types = types
        self.byteFallback = byteFallback
        self.addDummyPrefix = addDummyPrefix
        self.removeExtraWhitespaces = removeExtraWhitespaces
        self.escapeWhitespaces = escapeWhitespaces
        self.treatWhitespaceAsSuffix = treatWhitespaceAsSuffix
        self.bosPiece = bosPiece
        self.eosPiece = eosPiece
        self.unknownSurface = unknownSurface
    }
}

final class SentencePieceModel: @unchecked Sendable {
    let pieces: [[UInt8]]
    let pieceStrings: [String]
    let scores: [Float]
    let types: [SentencePieceType]
    /// NORMAL, USER_DEFINED and UNUSED pieces: the ones merges may produce.
    let mergeable: ByteStringMap
    /// UNKNOWN, CONTROL and BYTE pieces (looked up first by `PieceToId`).
    let reserved: ByteStringMap
    let unkID: Int32
    let byteFallback: Bool
    /// `<0xXX>` piece id per byte (the unknown id when missing, as `PieceToId` answers).
    let byteIDs: [Int32]
    let normalizer: SentencePieceNormalizer
    let userDefined: LiteralSetMatcher
    let hasUnusedPieces: Bool
    let unknownSurface: [UInt8]
    let bosID: Int32?
    let eosID: Int32?
    /// No mergeable piece contains "▁" after another character, so segments starting at
    /// each run of "▁" can be encoded (and cached) independently with identical results.
    let cutBeforeMetaspace: Bool

    init(_ v: SentencePieceVocabulary, charsMap: PrecompiledCharsMap?, path: String) throws(FileError) {
        guard !v.pieces.isEmpty else { throw FileError(path, "SentencePiece model has no pieces") }
        guard v.scores.count == v.pieces.count, v.types.count == v.pieces.count else {
            throw FileError(path, "SentencePiece vocabulary has \(v.pieces.count) pieces but \(v.scores.count) scores and \(v.types.count) types")
        }
        guard v.pieces.count <= maxVocabularyID else { throw FileError(path, "SentencePiece model has too many pieces (\(v.pieces.count))") }
        var mergeable = ByteStringMap(capacity: v.pieces.count)
        var reserved = ByteStringMap(capacity: 512)
        var userDefined = LiteralSetMatcher()
        var unk: Int32 = -1
        var unused = false
        for (i, piece) in v.pieces.enumerated() {
            guard !piece.isEmpty else { throw FileError(path, "piece \(i) is empty") }
            let type = v.types[i]
            let isMergeable = type == .normal || type == .userDefined || type == .unused
            let previous = isMergeable ? mergeable.insert(piece, value: Int32(i)) : reserved.insert(piece, value: Int32(i))
            if previous != nil { throw FileError(path, "piece \(i) \(JSON.string(piece).serialized()) is a duplicate") }
            switch type {
            case .userDefined: userDefined.add(Array(piece.utf8), token: i)
            case .unknown:
                guard unk < 0 else { throw FileError(path, "SentencePiece model has more than one unknown piece") }
                unk = Int32(i)
            case .byte:
                guard v.byteFallback else { throw FileError(path, "byte piece \(piece) present but byte_fallback is off") }
                guard byteFallbackValue(piece) != nil else { throw FileError(path, "byte piece \(i) \(JSON.string(piece).serialized()) is not of the form <0xXX>") }
            case .unused: unused = true
            default: break
            }
        }
        guard unk >= 0 else { throw FileError(path, "SentencePiece model has no unknown (<unk>) piece") }
        var byteIDs = [Int32](repeating: unk, count: 256)
        if v.byteFallback {
            for b in 0..<256 {
                let name = "<0x\(String(b, radix: 16, uppercase: true).leftPadded(2))>"
                let r = reserved.find(name)
                let id = r >= 0 ? r : mergeable.find(name)
                if id >= 0 { byteIDs[b] = id }
            }
        }
        func controlID(_ piece: String) -> Int32? {
            let r = reserved.find(piece)
            let id = r >= 0 ? r : mergeable.find(piece)
            return id >= 0 && v.types[Int(id)] == .control ? id : nil
        }
        var crossing = false
        for e in 0..<mergeable.count where !crossing {
            let k = Array(mergeable.key(at: e))
            var i = 3
            while i + 3 <= k.count {
                if k[i] == 0xE2, k[i + 1] == 0x96, k[i + 2] == 0x81, !(k[i - 3] == 0xE2 && k[i - 2] == 0x96 && k[i - 1] == 0x81) {
                    crossing = true
                    break
                }
                i += 1
            }
        }
        self.pieces = v.pieces.map { Array($0.utf8) }
        self.pieceStrings = v.pieces
        self.scores = v.scores
        self.types = v.types
        self.mergeable = mergeable
        self.reserved = reserved
        self.unkID = unk
        self.byteFallback = v.byteFallback
        self.byteIDs = byteIDs
        self.userDefined = userDefined
        self.hasUnusedPieces = unused
        self.unknownSurface = Array(v.unknownSurface.utf8)
        self.bosID = controlID(v.bosPiece)
        self.eosID = controlID(v.eosPiece)
        self.cutBeforeMetaspace = !crossing && !unused
        self.normalizer = SentencePieceNormalizer(
            addDummyPrefix: v.addDummyPrefix, removeExtraWhitespaces: v.removeExtraWhitespaces,
            escapeWhitespaces: v.escapeWhitespaces, treatWhitespaceAsSuffix: v.treatWhitespaceAsSuffix,
            charsMap: charsMap, userDefined: userDefined)
    }

    /// `PieceToId`: reserved pieces first, then mergeable ones, else the unknown id.
    @inline(__always)
    func pieceToID(_ p: UnsafePointer<UInt8>, _ n: Int) -> Int32 {
        let r = reserved.find(p, n)
        if r >= 0 { return r }
        let m = mergeable.find(p, n)
        return m >= 0 ? m : unkID
    }

    // MARK: Loading tokenizer.model

    /// Parses a serialized ModelProto file. Only BPE models are accepted.
    static func load(path: String) throws(FileError) -> SentencePieceModel {
        let file = try MappedFile(path: path)
        // The bytes must outlive every use of them (ARC may release `file` after its last use).
        defer { withExtendedLifetime(file) {} }
        return try parse(file.bytes, path: path)
    }

    /// Parses a serialized ModelProto held in `bytes` (not retained); `path` names it in errors.
    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(FileError) -> SentencePieceModel {
        guard bytes.count > 0 else { throw FileError(path, "empty file") }
        var root = ProtoReader(bytes, path: path)
        var pieces: [String] = [], scores: [Float] = [], types: [SentencePieceType] = []
        var modelType: UInt64 = 1  // proto default: UNIGRAM
        var byteFallback = false, treatAsSuffix = false
        var addDummyPrefix = true, removeExtra = true, escape = true
        var charsMapBlob: [UInt8] = []
        var normalizerName = ""
        var denormalizerRules = false
        var unkSurface = " \u{2047} ", bosPiece = "<s>", eosPiece = "</s>"
        while let (field, value) = try root.next() {
            switch field {
            case 1:  // SentencePiece
                guard let r = value.range else { throw FileError(path, "piece \(pieces.count) is not a message") }
                var m = root.sub(r)
                var piece: String? = nil, score: Float = 0, type = SentencePieceType.normal
                while let (f, v) = try m.next() {
                    switch f {
                    case 1:
                        guard let rr = v.range else { throw FileError(path, "piece \(pieces.count) has a non-string text") }
                        piece = try m.string(rr, what: "piece \(pieces.count)")
                    case 2:
                        guard let s = v.float else { throw FileError(path, "piece \(pieces.count) has a non-float score") }
                        score = s
                    case 3:
                        guard let t = v.uint64, let tt = SentencePieceType(rawValue: Int(truncatingIfNeeded: t)), t <= 6 else {
                            throw FileError(path, "piece \(pieces.count) has an unknown type")
                        }
                        type = tt
                    default: break
                    }
                }
                guard let piece else { throw FileError(path, "piece \(pieces.count) has no text") }
                pieces.append(piece); scores.append(score); types.append(type)
            case 2:  // TrainerSpec
                guard let r = value.range else { throw FileError(path, "trainer_spec is not a message") }
                var m = root.sub(r)
                while let (f, v) = try m.next() {
                    switch f {
                    case 3: modelType = v.uint64 ?? modelType
                    case 24: treatAsSuffix = v.bool ?? false
                    case 35: byteFallback = v.bool ?? false
                    case 44: if let rr = v.range { unkSurface = try m.string(rr, what: "unk_surface") }
                    case 46: if let rr = v.range { bosPiece = try m.string(rr, what: "bos_piece") }
                    case 47: if let rr = v.range { eosPiece = try m.string(rr, what: "eos_piece") }
                    default: break
                    }
                }
            case 3:  // NormalizerSpec
                guard let r = value.range else { throw FileError(path, "normalizer_spec is not a message") }
                var m = root.sub(r)
                while let (f, v) = try m.next() {
                    switch f {
                    case 1: if let rr = v.range { normalizerName = try m.string(rr, what: "normalizer name") }
                    case 2: if let rr = v.range { charsMapBlob = m.bytes(rr) }
                    case 3: addDummyPrefix = v.bool ?? addDummyPrefix
                    case 4: removeExtra = v.bool ?? removeExtra
                    case 5: escape = v.bool ?? escape
                    default: break
                    }
                }
            case 5:  // denormalizer_spec
                guard let r = value.range else { break }
                var m = root.sub(r)
                while let (f, v) = try m.next() {
                    if f == 2, let rr = v.range, !rr.isEmpty { denormalizerRules = true }
                }
            default: break
            }
        }
        switch modelType {
        case 2: break
        case 1: throw FileError(path, "unsupported tokenizer model 'Unigram' (only SentencePiece BPE models are supported)")
        case 3: throw FileError(path, "unsupported tokenizer model 'Word'")
        case 4: throw FileError(path, "unsupported tokenizer model 'Char'")
        default: throw FileError(path, "unknown SentencePiece model type \(modelType)")
        }
        if denormalizerRules { throw FileError(path, "SentencePiece denormalization rules are not supported") }
        var charsMap: PrecompiledCharsMap? = nil
        if !charsMapBlob.isEmpty {
            guard let cm = PrecompiledCharsMap(charsMapBlob) else {
                throw FileError(path, "normalizer '\(normalizerName)' has a malformed precompiled character map")
            }
            charsMap = cm
        }
        let vocabulary = SentencePieceVocabulary(
            pieces: pieces, scores: scores, types: types, byteFallback: byteFallback, addDummyPrefix: addDummyPrefix,
            removeExtraWhitespaces: removeExtra, escapeWhitespaces: escape, treatWhitespaceAsSuffix: treatAsSuffix,
            bosPiece: bosPiece, eosPiece: eosPiece, unknownSurface: unkSurface)
        return try SentencePieceModel(vocabulary, charsMap: charsMap, path: path)
    }
}
