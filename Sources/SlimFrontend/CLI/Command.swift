import Foundation
import SlimIO

/// Process exit codes (BSD sysexits where one fits).
public enum ExitCode: Int32, Sendable {
    case success = 0
    /// The work itself failed: bad model file, unreadable dataset, write error.
    case failure = 1
    /// EX_USAGE: the command line is wrong.
    case usage = 64
    /// Interrupted by SIGINT (128 + 2), state saved where the command supports it.
    case interrupted = 130
}

/// Where a command writes. Results go to `out`; progress, warnings and errors to `err`.
/// Tests capture both in memory.
public final class Console: @unchecked Sendable {
    private let writeOut: (String) -> Void
    private let writeErr: (String) -> Void

    public init(out: @escaping (String) -> Void, err: @escaping (String) -> Void) {
        writeOut = out
        writeErr = err
    }

    /// The process's real stdout/stderr (unbuffered writes of whole strings).
    public static let standard = Console(
        out: { s in FileHandle.standardOutput.write(Data(s.utf8)) },
        err: { s in FileHandle.standardError.write(Data(s.utf8)) })

    public func print(_ line: String = "") { writeOut(line + "\n") }
    public func write(_ text: String) { writeOut(text) }
    public func log(_ line: String) { writeErr(line + "\n") }
    public func logPartial(_ text: String) { writeErr(text) }
}

/// Static description of a command: name, one-line abstract, longer discussion and examples.
public struct CommandConfiguration: Sendable {
    public let name: String
    public let abstract: String
    public let usage: String
    public let discussion: String
    public let examples: [String]
    public let options: [OptionSpec]
    public let allowsPositionals: Bool

    public init(
        name: String, abstract: String, usage: String, discussion: String = "", examples: [String],
        options: [OptionSpec], allowsPositionals: Bool = false
    ) {
        self.name = name
        self.abstract = abstract
        self.usage = usage
        self.discussion = discussion
        self.examples = examples
        self.options = options
        self.allowsPositionals = allowsPositionals
    }
}

/// A subcommand: parsed and validated first (usage errors, exit 64), then run (work errors, exit 1).
public protocol SlimCommand {
    static var configuration: CommandConfiguration { get }
    /// Builds the command from parsed arguments, converting types; throws `UsageError`.
    init(_ args: ParsedArguments) throws(UsageError)
    /// Cross-option checks that need no I/O; throws `UsageError`.
    func validate() throws(UsageError)
    /// Does the work.
    func run(console: Console) throws
}

extension SlimCommand {
    public func validate() throws(UsageError) {}
}

// MARK: - Help

extension CommandConfiguration {
    static let helpSpec = OptionSpec.flag("help", short: "h", help: "Show help for this command.")

    /// The full help text of this command.
    public func helpText(tool: String) -> String {
        var s = "OVERVIEW: \(abstract)\n\nUSAGE: \(tool) \(name) \(usage)\n"
        if !discussion.isEmpty { s += "\n" + discussion + "\n" }
        s += "\nOPTIONS:\n"
        s += CommandConfiguration.formatOptions(options + [CommandConfiguration.helpSpec])
        s += "\nEXAMPLES:\n" + examples.map { "  \($0)\n" }.joined()
        return s
    }

    static func formatOptions(_ specs: [OptionSpec]) -> String {
        let lefts = specs.map { spec -> String in
            var l = spec.short.map { "-\($0), " } ?? ""
            l += "--\(spec.name)"
            if let v = spec.valueName { l += " \(v)" }
            return l
        }
        let width = min((lefts.map(\.count).max() ?? 0) + 2, 30)
        var out = ""
        for (spec, left) in zip(specs, lefts) {
            var help = spec.help
            if let d = spec.defaultValue { help += " (default: \(d))" }
            if left.count + 2 > width {
                out += "  \(left)\n" + String(repeating: " ", count: width + 2) + help + "\n"
            } else {
                out += "  " + left.padding(toLength: width, withPad: " ", startingAt: 0) + help + "\n"
            }
        }
        return out
    }
}
