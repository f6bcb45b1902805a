import SlimIO

// MARK: - Typed access to config keys

/// Typed, error-reporting access to the keys of one JSON object. Every error names the file and
/// the key (with `prefix` for nested objects, e.g. "rope_scaling.factor") and says what was
/// found instead, so a hand-edited config is easy to fix.
struct ConfigReader {
    let json: JSON
    let path: String
    var prefix: String = ""

    func fail(_ message: String) -> FileError { FileError(path, message) }

    /// True when the key is present, even as null.
    func has(_ key: String) -> Bool { json[key] != nil }

    /// The value, or nil when the key is absent or null.
    func value(_ key: String) -> JSON? {
        guard let v = json[key], v != .null else { return nil }
        return v
    }

    /// A short description of the value at `key` for error messages.
    func describe(_ key: String) -> String {
        guard let v = json[key] else { return "nothing" }
        return ConfigReader.describe(v)
    }

    static func describe(_ v: JSON) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return "a boolean (\(b))"
        case .int(let i): return "an integer (\(i))"
        case .double(let d): return "a number (\(d))"
        case .string(let s): return "a string (\"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\")"
        case .array: return "a list"
        case .object: return "an object"
        }
    }

    private func typeError(_ key: String, _ expected: String) -> FileError {
        fail("\"\(prefix)\(key)\" must be \(expected), found \(describe(key))")
    }

    func requiredInt(_ key: String) throws(FileError) -> Int {
        guard let v = value(key) else { throw fail("missing required key \"\(prefix)\(key)\"") }
        guard let i = v.int else { throw typeError(key, "an integer") }
        return i
    }

    /// A required integer in 1…`max`.
    func positiveInt(_ key: String, max: Int = Int.max) throws(FileError) -> Int {
        let i = try requiredInt(key)
        guard i > 0 else { throw fail("\"\(prefix)\(key)\" must be positive, found \(i)") }
        try checkMaximum(key, i, max)
        return i
    }

    /// An optional integer in 1…`max`.
    func optionalPositiveInt(_ key: String, max: Int = Int.max) throws(FileError) -> Int? {
        guard let v = value(key) else { return nil }
        guard let i = v.int else { throw typeError(key, "an integer") }
        guard i > 0 else { throw fail("\"\(prefix)\(key)\" must be positive, found \(i)") }
        try checkMaximum(key, i, max)
        return i
    }

    private func checkMaximum(_ key: String, _ i: Int, _ max: Int) throws(FileError) {
        guard i <= max else {
            throw fail("\"\(prefix)\(key)\" is \(i), above the supported maximum \(max) (corrupt config?)")
        }
    }

    func optionalDouble(_ key: String) throws(FileError) -> Double? {
        guard let v = value(key) else { return nil }
        guard let d = v.double, d.isFinite else { throw typeError(key, "a number") }
        return d
    }

    func positiveDouble(_ key: String) throws(FileError) -> Double {
        guard let d = try optionalDouble(key) else { throw fail("missing required key \"\(prefix)\(key)\"") }
        guard d > 0 else { throw fail("\"\(prefix)\(key)\" must be positive, found \(d)") }
        return d
    }

    func optionalBool(_ key: String) throws(FileError) -> Bool? {
        guard let v = value(key) else { return nil }
        guard let b = v.bool else { throw typeError(key, "true or false") }
        return b
    }

    func optionalString(_ key: String) throws(FileError) -> String? {
        guard let v = value(key) else { return nil }
        guard let s = v.string else { throw typeError(key, "a string") }
        return s
    }

    /// A token id: absent → `default`, null → nil, otherwise a non-negative integer.
    func tokenID(_ key: String, default defaultID: Int?) throws(FileError) -> Int? {
        guard let v = json[key] else { return defaultID }
        if v == .null { return nil }
        guard let i = v.int else { throw typeError(key, "an integer token id") }
        guard i >= 0 else { throw fail("\"\(prefix)\(key)\" must be a non-negative token id, found \(i)") }
        return i
    }

    /// One token id or a list of them: absent → `default`, null → [].
    func tokenIDs(_ key: String, default defaultIDs: [Int]) throws(FileError) -> [Int] {
        guard let v = json[key] else { return defaultIDs }
        switch v {
        case .null: return []
        case .array(let items):
            var ids: [Int] = []
            for item in items {
                guard let i = item.int, i >= 0 else {
                    throw fail("\"\(prefix)\(key)\" must list non-negative integer token ids, found \(ConfigReader.describe(item)) in the list")
                }
                ids.append(i)
            }
            return ids
        default:
            guard let i = v.int else { throw typeError(key, "an integer token id or a list of them") }
            guard i >= 0 else { throw fail("\"\(prefix)\(key)\" must be a non-negative token id, found \(i)") }
            return [i]
        }
    }

    /// A reader for the nested object at `key`, or nil when absent or null.
    func nested(_ key: String) throws(FileError) -> ConfigReader? {
        guard let v = value(key) else { return nil }
        guard v.object != nil else { throw typeError(key, "an object") }
        return ConfigReader(json: v, path: path, prefix: prefix + key + ".")
    }
}

// MARK: - Rotary embedding parameters

/// Reads θ and the frequency scaling from the two spellings transformers has used:
/// `rope_theta` + `rope_scaling` (up to 4.x) and `rope_parameters` (5.x), which may both be
/// present in a converted config. Conflicting values are an error rather than a silent pick.
enum RopeReader {
    struct Result {
        var theta: Double
        var scaling: LlamaConfig.RopeScaling?
    }

    static func read(_ r: ConfigReader) throws(FileError) -> Result {
        let topTheta = try r.optionalDouble("rope_theta")
        var theta = topTheta
        // Each spelling that is present yields Optional(scaling-or-nil-for-default).
        var fromParameters: LlamaConfig.RopeScaling??
        if let p = try r.nested("rope_parameters") {
            if let partial = try p.optionalDouble("partial_rotary_factor"), partial != 1 {
                throw r.fail("rope_parameters.partial_rotary_factor \(partial) is not supported (LLaMA rotates the whole head)")
            }
            if let pTheta = try p.optionalDouble("rope_theta") {
                if let topTheta, topTheta != pTheta {
                    throw r.fail("rope_theta \(topTheta) conflicts with rope_parameters.rope_theta \(pTheta)")
                }
                theta = pTheta
            }
            fromParameters = .some(try scaling(p))
        }
        var fromScaling: LlamaConfig.RopeScaling??
        if let s = try r.nested("rope_scaling") {
            fromScaling = .some(try scaling(s))
        }
        if let a = fromParameters, let b = fromScaling, a != b {
            throw r.fail("rope_scaling and rope_parameters describe different rotary scalings")
        }
        let finalTheta = theta ?? 10000
        guard finalTheta > 0 else { throw r.fail("rope_theta must be positive, found \(finalTheta)") }
        return Result(theta: finalTheta, scaling: (fromParameters ?? fromScaling) ?? nil)
    }

    /// Parses one rope object; nil means plain rotary embeddings ("default").
    private static func scaling(_ s: ConfigReader) throws(FileError) -> LlamaConfig.RopeScaling? {
        // transformers < 4.45 wrote the kind as "type"; later versions as "rope_type".
        var kind = try s.optionalString("rope_type")
        if kind == nil { kind = try s.optionalString("type") }
        switch kind {
        case nil:
            if s.has("factor") {
                throw s.fail("\"\(s.prefix.dropLast())\" has a factor but no rope_type; cannot tell which scaling is meant")
            }
            return nil
        case "default"?:
            return nil
        case "llama3"?:
            let factor = try s.positiveDouble("factor")
            let low = try s.positiveDouble("low_freq_factor")
            let high = try s.positiveDouble("high_freq_factor")
            guard high > low else {
                throw s.fail("\(s.prefix)high_freq_factor (\(high)) must exceed \(s.prefix)low_freq_factor (\(low))")
            }
            let original = try s.positiveInt("original_max_position_embeddings")
            return .llama3(factor: factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPositionEmbeddings: original)
        case let other?:
            throw s.fail("rotary scaling \"\(other)\" (\(s.prefix)rope_type) is not supported; only plain rotary embeddings and \"llama3\" scaling are")
        }
    }
}
