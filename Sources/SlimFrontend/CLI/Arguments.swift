// A small declarative command-line parser in the shape of swift-argument-parser: each command
// declares its options, the parser turns argv into `ParsedArguments`, and typed accessors turn
// strings into values. Every problem is a `UsageError` (exit 64) with one clear line.

/// A command-line mistake: unknown flag, missing value, bad number, conflicting options.
public struct UsageError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One option or flag a command accepts.
public struct OptionSpec: Sendable {
    /// Long name without dashes, e.g. "model" for `--model`.
    public let name: String
    /// Optional one-letter short name, e.g. "m" for `-m`.
    public let short: Character?
    /// Placeholder shown in help (`--model DIR`); nil for a boolean flag.
    public let valueName: String?
    public let help: String
    /// Shown as "(default: …)" in help.
    public let defaultValue: String?
    /// Whether the option may be given several times (values accumulate).
    public let repeatable: Bool

    public var isFlag: Bool { valueName == nil }

    public static func option(
        _ name: String, short: Character? = nil, value: String, help: String, default defaultValue: String? = nil,
        repeatable: Bool = false
    ) -> OptionSpec {
        OptionSpec(name: name, short: short, valueName: value, help: help, defaultValue: defaultValue, repeatable: repeatable)
    }

    public static func flag(_ name: String, short: Character? = nil, help: String) -> OptionSpec {
        OptionSpec(name: name, short: short, valueName: nil, help: help, defaultValue: nil, repeatable: false)
    }
}

/// The result of parsing: option values by long name, flags that were set, positionals.
public struct ParsedArguments {
    var values: [String: [String]] = [:]
    var flags: Set<String> = []
    public var positionals: [String] = []
}

// MARK: - Parsing

extension ParsedArguments {
    /// Parses `args` (without the command path) against `specs`. `--name=value`, `--name value`,
    /// `-n value` and `--` (end of options) are accepted. `--help`/`-h` is handled by the caller.
    public init(_ args: [String], specs: [OptionSpec], allowsPositionals: Bool = false) throws(UsageError) {
        var byLong: [String: OptionSpec] = [:]
        var byShort: [Character: OptionSpec] = [:]
        for s in specs {
            byLong[s.name] = s
            if let c = s.short { byShort[c] = s }
        }
        var i = 0
        var onlyPositionals = false
        while i < args.count {
            let arg = args[i]
            i += 1
            if onlyPositionals || !arg.hasPrefix("-") || arg == "-" {
                guard allowsPositionals else { throw UsageError("unexpected argument '\(arg)'") }
                positionals.append(arg)
                continue
            }
            if arg == "--" { onlyPositionals = true; continue }
            var inlineValue: String?
            let spec: OptionSpec
            if arg.hasPrefix("--") {
                var name = String(arg.dropFirst(2))
                if let eq = name.firstIndex(of: "=") {
                    inlineValue = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                guard let s = byLong[name] else { throw UsageError("unknown option '--\(name)'\(ParsedArguments.suggestion(name, specs))") }
                spec = s
            } else {
                let body = arg.dropFirst()
                guard body.count == 1, let c = body.first, let s = byShort[c] else {
                    throw UsageError("unknown option '\(arg)'")
                }
                spec = s
            }
            if spec.isFlag {
                if inlineValue != nil { throw UsageError("flag '--\(spec.name)' does not take a value") }
                flags.insert(spec.name)
                continue
            }
            let value: String
            if let inlineValue {
                value = inlineValue
            } else {
                guard i < args.count else { throw UsageError("missing value for '--\(spec.name) \(spec.valueName!)'") }
                value = args[i]
                i += 1
                // "--model --json" is almost certainly a forgotten value, not a path called "--json".
                if value.hasPrefix("--"), byLong[String(value.dropFirst(2)).split(separator: "=").first.map(String.init) ?? ""] != nil {
                    throw UsageError("missing value for '--\(spec.name) \(spec.valueName!)'")
                }
            }
            if values[spec.name] != nil && !spec.repeatable {
                throw UsageError("option '--\(spec.name)' given more than once")
            }
            values[spec.name, default: []].append(value)
        }
    }

    static func suggestion(_ name: String, _ specs: [OptionSpec]) -> String {
        let best = specs.map { ($0.name, editDistance($0.name, name)) }.min { $0.1 < $1.1 }
        if let best, best.1 <= 2 { return " (did you mean '--\(best.0)'?)" }
        return ""
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8), b = Array(b.utf8)
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in stride(from: 1, through: b.count, by: 1) {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}

// MARK: - Typed access

extension ParsedArguments {
    public func has(_ flag: String) -> Bool { flags.contains(flag) }
    public func isSet(_ option: String) -> Bool { values[option] != nil }
    public func string(_ option: String) -> String? { values[option]?.last }
    public func strings(_ option: String) -> [String] { values[option] ?? [] }

    public func required(_ option: String, _ valueName: String) throws(UsageError) -> String {
        guard let v = string(option) else { throw UsageError("missing required option '--\(option) \(valueName)'") }
        return v
    }

    /// An integer option; `range` bounds it. Accepts only plain decimal integers.
    public func int(_ option: String, default def: Int, in range: ClosedRange<Int> = Int.min...Int.max) throws(UsageError) -> Int {
        guard let s = string(option) else { return def }
        guard let v = Int(s) else { throw UsageError("invalid value for '--\(option)': '\(s)' is not an integer") }
        guard range.contains(v) else {
            throw UsageError("invalid value for '--\(option)': \(v) is outside \(range.lowerBound)...\(range.upperBound)")
        }
        return v
    }

    /// A comma-separated list of integers (llama-bench style, `-d 0,512,2048`), each in `range`;
    /// duplicates are kept in the order given.
    public func ints(_ option: String, default def: [Int], in range: ClosedRange<Int> = Int.min...Int.max)
        throws(UsageError) -> [Int] {
        guard let s = string(option) else { return def }
        var values: [Int] = []
        for part in s.split(separator: ",", omittingEmptySubsequences: false) {
            guard let v = Int(part) else {
                throw UsageError("invalid value for '--\(option)': '\(s)' is not a comma-separated list of integers")
            }
            guard range.contains(v) else {
                throw UsageError("invalid value for '--\(option)': \(v) is outside \(range.lowerBound)...\(range.upperBound)")
            }
            values.append(v)
        }
        return values
    }

    /// A finite floating-point option.
    public func double(_ option: String, default def: Double, in range: ClosedRange<Double> = -Double.greatestFiniteMagnitude...Double.greatestFiniteMagnitude) throws(UsageError) -> Double {
        guard let s = string(option) else { return def }
        guard let v = Double(s), v.isFinite else { throw UsageError("invalid value for '--\(option)': '\(s)' is not a number") }
        guard range.contains(v) else { throw UsageError("invalid value for '--\(option)': \(s) is outside \(range.lowerBound)...\(range.upperBound)") }
        return v
    }

    /// An option restricted to a fixed set of words.
    public func choice<T: RawRepresentable>(_ option: String, default def: T) throws(UsageError) -> T
    where T.RawValue == String, T: CaseIterable {
        guard let s = string(option) else { return def }
        guard let v = T(rawValue: s) else {
            let allowed = T.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageError("invalid value for '--\(option)': '\(s)' (expected one of: \(allowed))")
        }
        return v
    }
}
