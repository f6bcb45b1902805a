import SlimIO

// Pre-tokenizers of tokenizer.json (`pre_tokenizer`), with HF `tokenizers` semantics.

/// Metaspace's rule for adding the replacement character in front of a split.
enum PrependScheme: String, Sendable {
    /// Every split not already starting with the replacement.
    case always
    /// Only the split that begins the input.
    case first
    case never
}

/// One pre-tokenization step; a `Sequence` is flattened into consecutive steps.
enum PreTokenizerStep: Sendable {
    /// GPT-2 byte-level: optional prefix space, optional GPT-2 regex split, then every byte
    /// becomes its printable stand-in character.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    /// Splits off numeric characters (`char::is_numeric`): each alone, or runs together.
    case digits(individual: Bool)
    case split(SplitMatcher, behavior: SplitBehavior, invert: Bool)
    /// Spaces become `replacement`; a replacement may be prepended; optionally split before
    /// each replacement.
    case metaspace(replacement: [UInt8], prependScheme: PrependScheme, split: Bool)
}

/// What a Split pre-tokenizer looks for.
enum SplitMatcher: Sendable {
    case regex(SplitPattern)
    case literal([UInt8])

    func matches(_ p: UnsafePointer<UInt8>, _ start: Int, _ end: Int) -> [Int] {
        switch self {
        case .regex(let r):
            var out = [Int]()
            r.matches(p, start, end, into: &out)
            return out
        case .literal(let s):
            return literalMatches(p, start, end, s)
        }
    }
}

// MARK: - Parsing

extension PreTokenizerStep {
    /// Parses a `pre_tokenizer` value (nil / null gives no steps).
    static func parse(_ json: JSON?, path: String) throws(FileError) -> [PreTokenizerStep] {
        guard let json, !json.isNull else { return [] }
        guard let type = json["type"]?.string else { throw FileError(path, "pre_tokenizer without a \"type\"") }
        switch type {
        case "Sequence":
            guard let list = json["pretokenizers"]?.array else {
                throw FileError(path, "Sequence pre_tokenizer without a \"pretokenizers\" array")
            }
            var steps: [PreTokenizerStep] = []
            for item in list { steps += try parse(item, path: path) }
            return steps
        case "ByteLevel":
            return [.byteLevel(addPrefixSpace: json["add_prefix_space"]?.bool ?? true,
                               useRegex: json["use_regex"]?.bool ?? true)]
        case "Digits":
            return [.digits(individual: json["individual_digits"]?.bool ?? false)]
        case "Split":
            let matcher = try parsePattern(json["pattern"], what: "Split pre_tokenizer", path: path)
            guard let b = json["behavior"]?.string, let behavior = SplitBehavior(rawValue: b) else {
                throw FileError(path, "Split pre_tokenizer has a missing or unknown \"behavior\"")
            }
            return [.split(matcher, behavior: behavior, invert: json["invert"]?.bool ?? false)]
        case "Metaspace":
            let replacement = json["replacement"]?.string ?? "\u{2581}"
            guard replacement.unicodeScalars.count == 1 else {
                throw FileError(path, "Metaspace replacement must be one character, got \"\(replacement)\"")
            }
            let scheme: PrependScheme
            if let s = json["prepend_scheme"]?.string {
                guard let ps = PrependScheme(rawValue: s) else {
                    throw FileError(path, "unknown Metaspace prepend_scheme '\(s)'")
                }
                scheme = ps
            } else {
                // Files written before prepend_scheme existed carry add_prefix_space.
                scheme = (json["add_prefix_space"]?.bool ?? true) ? .always : .never
            }
            return [.metaspace(replacement: Array(replacement.utf8), prependScheme: scheme,
                               split: json["split"]?.bool ?? true)]
        default:
            throw FileError(path, "unsupported pre-tokenizer '\(type)'")
        }
    }
}

/// Parses a `{"Regex": …}` / `{"String": …}` pattern object.
func parsePattern(_ json: JSON?, what: String, path: String) throws(FileError) -> SplitMatcher {
    if let s = json?["String"]?.string {
        guard !s.isEmpty else { throw FileError(path, "\(what) has an empty String pattern") }
        return .literal(Array(s.utf8))
    }
    if let r = json?["Regex"]?.string {
        guard let p = SplitPattern.recognize(r) else {
            throw FileError(path, "\(what) uses an unsupported regex pattern \(JSON.string(r).serialized()) "
                + "(supported: the GPT-2, LLaMA-3 and Qwen2 split patterns)")
        }
        return .regex(p)
    }
    throw FileError(path, "\(what) needs a pattern {\"String\": …} or {\"Regex\": …}")
}

// MARK: - Application

extension PreTokenizerStep {
    func apply(to text: inout SegmentedText) {
        switch self {
        case .byteLevel(let addPrefixSpace, let useRegex):
            let table = ByteLevelMap.encoded
            text.rewriteText { input, _, out, pieces in
                var source = [UInt8]()
                source.reserveCapacity(input.count + 1)
                if addPrefixSpace && input.first != 0x20 { source.append(0x20) }
                source.append(contentsOf: input)
                var ranges = [Int]()
                if useRegex {
                    source.withUnsafeBufferPointer { b in
                        let found = SplitMatcher.regex(.gpt2).matches(b.baseAddress!, 0, b.count)
                        applySplitBehavior(matches: found, start: 0, end: b.count, behavior: .isolated, invert: false, into: &ranges)
                    }
                } else {
                    ranges = [0, source.count]
                }
                var k = 0
                while k + 1 < ranges.count {
                    pieces.append(out.count)
                    for i in ranges[k]..<ranges[k + 1] { out.append(contentsOf: table[Int(source[i])]) }
                    pieces.append(out.count)
                    k += 2
                }
            }
        case .digits(let individual):
            text.splitText { p, s, e, out in
                let m = characterMatches(p, s, e) { c in
                    c < 0x80 ? (c >= 0x30 && c <= 0x39) : UnicodeClasses.flags(c).contains(.numeric)
                }
                applySplitBehavior(matches: m, start: s, end: e, behavior: individual ? .isolated : .contiguous,
                                   invert: false, into: &out)
            }
        case .split(let matcher, let behavior, let invert):
            text.splitText { p, s, e, out in
                applySplitBehavior(matches: matcher.matches(p, s, e), start: s, end: e, behavior: behavior,
                                   invert: invert, into: &out)
            }
        case .metaspace(let replacement, let scheme, let split):
            text.rewriteText { input, atOrigin, out, pieces in
                let base = out.count
                // Replace spaces first: the prepend test looks at the replaced text.
                for b in input {
                    if b == 0x20 { out.append(contentsOf: replacement) } else { out.append(b) }
                }
                let startsWithReplacement = out.count - base >= replacement.count
                    && Array(out[base..<(base + replacement.count)]) == replacement
                let prepend: Bool
                switch scheme {
                case .always: prepend = !startsWithReplacement
                case .first: prepend = !startsWithReplacement && atOrigin
                case .never: prepend = false
                }
                if prepend && out.count > base { out.insert(contentsOf: replacement, at: base) }
                if split {
                    out.withUnsafeBufferPointer { b in
                        let m = literalMatches(b.baseAddress!, base, b.count, replacement)
                        applySplitBehavior(matches: m, start: base, end: b.count, behavior: .mergedWithNext, invert: false, into: &pieces)
                    }
                }
            }
        }
    }
}

// MARK: - GPT-2 byte map

/// GPT-2's reversible map between bytes and printable characters: printable Latin-1 bytes
/// stand for themselves, the other 68 bytes map to U+0100… in byte order.
enum ByteLevelMap {
    /// Scalar standing for each byte.
    static let scalars: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var n: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = UInt32(b)
            } else {
                table[b] = 256 + n
                n += 1
            }
        }
        return table
    }()

    /// UTF-8 of each byte's stand-in.
    static let encoded: [[UInt8]] = scalars.map { s in
        var out = [UInt8]()
        appendUTF8(s, to: &out)
        return out
    }

    /// Inverse map: stand-in scalar → byte (nil for any other scalar).
    static func byte(for scalar: UInt32) -> UInt8? {
        if scalar < 0x144, let b = inverse[Int(scalar)] { return b }
        return nil
    }

    private static let inverse: [UInt8?] = {
        var t = [UInt8?](repeating: nil, count: 0x144)
        for (b, s) in scalars.enumerated() { t[Int(s)] = UInt8(b) }
        return t
    }()
}
