import SlimIO

// Decoders of tokenizer.json (`decoder`), with HF `tokenizers` semantics: each step maps the
// list of token strings to a new list; the final list is concatenated.

enum DecoderStep: Sendable {
    /// Token characters back to bytes through the GPT-2 map (a token with any unmapped
    /// character contributes its own UTF-8); the bytes are decoded lossily into ONE string.
    case byteLevel
    /// Replacement character → space; in the first token every replacement is dropped unless
    /// the scheme is `never`.
    case metaspace(replacement: String, prependScheme: PrependScheme)
    case replace(pattern: String, content: String)
    /// Runs of `<0xXX>` tokens → their bytes as UTF-8 (each byte → U+FFFD when invalid).
    case byteFallback
    /// All tokens into one.
    case fuse
    /// Removes up to `start` leading and `stop` trailing `content` characters of each token.
    case strip(content: Unicode.Scalar, start: Int, stop: Int)

    static func parse(_ json: JSON?, path: String) throws(FileError) -> [DecoderStep] {
        guard let json, !json.isNull else { return [] }
        guard let type = json["type"]?.string else { throw FileError(path, "decoder without a \"type\"") }
        switch type {
        case "Sequence":
            guard let list = json["decoders"]?.array else { throw FileError(path, "Sequence decoder without \"decoders\"") }
            var steps: [DecoderStep] = []
            for item in list { steps += try parse(item, path: path) }
            return steps
        case "ByteLevel": return [.byteLevel]
        case "Metaspace":
            let replacement = json["replacement"]?.string ?? "\u{2581}"
            let scheme: PrependScheme
            if let s = json["prepend_scheme"]?.string {
                guard let ps = PrependScheme(rawValue: s) else { throw FileError(path, "unknown Metaspace prepend_scheme '\(s)'") }
                scheme = ps
            } else {
                scheme = (json["add_prefix_space"]?.bool ?? true) ? .always : .never
            }
            return [.metaspace(replacement: replacement, prependScheme: scheme)]
        case "Replace":
            guard case .literal(let pattern) = try parsePattern(json["pattern"], what: "Replace decoder", path: path) else {
                throw FileError(path, "Replace decoder with a Regex pattern is not supported (only String patterns)")
            }
            guard let content = json["content"]?.string else { throw FileError(path, "Replace decoder without \"content\"") }
            return [.replace(pattern: String(decoding: pattern, as: UTF8.self), content: content)]
        case "ByteFallback": return [.byteFallback]
        case "Fuse": return [.fuse]
        case "Strip":
            guard let c = json["content"]?.string, c.unicodeScalars.count == 1, let ch = c.unicodeScalars.first else {
                throw FileError(path, "Strip decoder needs a one-character \"content\"")
            }
            guard let start = json["start"]?.int, let stop = json["stop"]?.int, start >= 0, stop >= 0 else {
                throw FileError(path, "Strip decoder needs non-negative \"start\" and \"stop\"")
            }
            return [.strip(content: ch, start: start, stop: stop)]
        default:
            throw FileError(path, "unsupported decoder '\(type)'")
        }
    }

    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case .byteLevel:
            var bytes = [UInt8]()
            for t in tokens {
                let start = bytes.count
                var mapped = true
                for s in t.unicodeScalars {
                    guard let b = ByteLevelMap.byte(for: s.value) else { mapped = false; break }
                    bytes.append(b)
                }
                if !mapped {
                    bytes.removeSubrange(start...)
                    bytes.append(contentsOf: t.utf8)
                }
            }
            return [decodeUTF8LossyMaximalSubpart(bytes)]
        case .metaspace(let replacement, let scheme):
            let r = replacement.unicodeScalars.first
            return tokens.enumerated().map { i, t in
                var out = String.UnicodeScalarView()
                for s in t.unicodeScalars {
                    if s == r {
                        if i == 0 && scheme != .never { continue }
                        out.append(" ")
                    } else {
                        out.append(s)
                    }
                }
                return String(out)
            }
        case .replace(let pattern, let content):
            return tokens.map { replaceAll($0, pattern, content) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if isValidUTF8(pending) {
                    out.append(String(decoding: pending, as: UTF8.self))
                } else {
                    out.append(contentsOf: Array(repeating: "\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = byteFallbackValue(t) {
                    pending.append(b)
                } else {
                    flush()
                    out.append(t)
                }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                let chars = Array(t.unicodeScalars)
                var startCut = 0
                for (i, c) in chars.prefix(start).enumerated() {
                    if c == content { startCut = i + 1 } else { break }
                }
                var stopCut = chars.count
                var i = 0
                while i < stop, i < chars.count {
                    let index = chars.count - i - 1
                    if chars[index] == content { stopCut = index } else { break }
                    i += 1
                }
                guard startCut < stopCut else { return "" }
                var out = String.UnicodeScalarView()
                out.append(contentsOf: chars[startCut..<stopCut])
                return String(out)
            }
        }
    }
}

/// The byte of a `<0xXX>` token (exactly six bytes, hex parsed like Rust's
/// `u8::from_str_radix`, which also accepts a leading '+').
func byteFallbackValue(_ token: String) -> UInt8? {
    let u = Array(token.utf8)
    guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"),
          u[5] == UInt8(ascii: ">") else { return nil }
    func hex(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: return b - 0x30
        case 0x41...0x46: return b - 0x41 + 10
        case 0x61...0x66: return b - 0x61 + 10
        default: return nil
        }
    }
    if u[3] == UInt8(ascii: "+") { return hex(u[4]) }
    guard let hi = hex(u[3]), let lo = hex(u[4]) else { return nil }
    return hi << 4 | lo
}

/// Replaces every non-overlapping occurrence of `pattern` (leftmost first).
func replaceAll(_ s: String, _ pattern: String, _ content: String) -> String {
    let b = Array(s.utf8), pat = Array(pattern.utf8)
    guard !pat.isEmpty, b.count >= pat.count else { return s }
    let m = b.withUnsafeBufferPointer { literalMatches($0.baseAddress!, 0, $0.count, pat) }
    if m.isEmpty { return s }
    var out = [UInt8]()
    var prev = 0
    var k = 0
    while k + 1 < m.count {
        out.append(contentsOf: b[prev..<m[k]])
        out.append(contentsOf: content.utf8)
        prev = m[k + 1]
        k += 2
    }
    out.append(contentsOf: b[prev...])
    return String(decoding: out, as: UTF8.self)
}

// MARK: - Post-processors

/// What `encode(addSpecialTokens: true)` adds around the model's ids (single sequence).
struct PostProcessor: Sendable {
    var prefix: [Int32] = []
    var suffix: [Int32] = []

    /// Parses `post_processor`: TemplateProcessing, BertProcessing, RobertaProcessing,
    /// ByteLevel (offsets only) and Sequence of these.
    static func parse(_ json: JSON?, path: String) throws(FileError) -> PostProcessor {
        var result = PostProcessor()
        guard let json, !json.isNull else { return result }
        guard let type = json["type"]?.string else { throw FileError(path, "post_processor without a \"type\"") }
        switch type {
        case "ByteLevel":
            return result
        case "Sequence":
            guard let list = json["processors"]?.array else { throw FileError(path, "Sequence post_processor without \"processors\"") }
            for item in list {
                let p = try parse(item, path: path)
                result.prefix = p.prefix + result.prefix
                result.suffix += p.suffix
            }
            return result
        case "BertProcessing", "RobertaProcessing":
            guard let cls = json["cls"]?[1]?.int, let sep = json["sep"]?[1]?.int,
                  let c = Int32(exactly: cls), let s = Int32(exactly: sep) else {
                throw FileError(path, "\(type) needs \"cls\" and \"sep\" as [token, id]")
            }
            return PostProcessor(prefix: [c], suffix: [s])
        case "TemplateProcessing":
            guard let single = json["single"]?.array else {
                throw FileError(path, "TemplateProcessing without a \"single\" template list")
            }
            let specials = json["special_tokens"]?.object ?? JSONObject()
            var seenSequence = false
            for piece in single {
                if let seq = piece["Sequence"] {
                    guard seq["id"]?.string == "A", !seenSequence else {
                        throw FileError(path, "TemplateProcessing single template must contain sequence A exactly once")
                    }
                    seenSequence = true
                } else if let sp = piece["SpecialToken"] {
                    guard let name = sp["id"]?.string, let entry = specials[name], let ids = entry["ids"]?.array else {
                        throw FileError(path, "TemplateProcessing refers to special token \(piece["SpecialToken"]?["id"]?.string ?? "?") missing from \"special_tokens\"")
                    }
                    var values: [Int32] = []
                    for v in ids {
                        guard let i = v.int, let i32 = Int32(exactly: i), i32 >= 0 else {
                            throw FileError(path, "TemplateProcessing special token \(name) has an invalid id")
                        }
                        values.append(i32)
                    }
                    if seenSequence { result.suffix += values } else { result.prefix += values }
                } else {
                    throw FileError(path, "TemplateProcessing template item is neither Sequence nor SpecialToken")
                }
            }
            guard seenSequence else { throw FileError(path, "TemplateProcessing single template lacks sequence A") }
            return result
        default:
            throw FileError(path, "unsupported post-processor '\(type)'")
        }
    }
}
