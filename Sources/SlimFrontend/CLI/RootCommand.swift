import Foundation
import SlimIO

/// The `slim-quant` command tree. Subcommands register here; a subcommand appears only when it
/// works end to end.
public enum SlimQuantCommand {
    public static let toolName = "slim-quant"
    public static let version = "0.2.0"

    public static let subcommands: [any SlimCommand.Type] = [
        TokenizeCommand.self,
        InspectCommand.self,
        ConvertCommand.self,
        EvalPPLCommand.self,
        GenerateCommand.self,
        BenchCommand.self,
        QuantizeCommand.self,
    ]

    /// Entry point of the executable: runs with the process arguments and exits.
    public static func main() -> Never {
        // A model file truncated by another process while mapped: one error line, exit 1.
        MappedFile.installTruncationHandler()
        let code = run(Array(CommandLine.arguments.dropFirst()), console: .standard)
        exit(code.rawValue)
    }

    /// Parses `arguments` (without the program name), runs the chosen subcommand and returns the
    /// exit code. Never throws: usage errors print one line and return `.usage`, work errors print
    /// one line and return `.failure`.
    public static func run(_ arguments: [String], console: Console) -> ExitCode {
        guard let first = arguments.first else {
            console.log(rootHelp())
            return .usage
        }
        switch first {
        case "--help", "-h", "help":
            if first == "help", arguments.count > 1, let sub = find(arguments[1]) {
                console.print(sub.configuration.helpText(tool: toolName))
            } else {
                console.print(rootHelp())
            }
            return .success
        case "--version":
            console.print("\(toolName) \(version)")
            return .success
        default: break
        }
        guard let sub = find(first) else {
            let hint = first.hasPrefix("-") ? "unknown option '\(first)'" : "unknown subcommand '\(first)'"
            console.log("error: \(hint). See '\(toolName) --help'.")
            return .usage
        }
        let rest = Array(arguments.dropFirst())
        if rest.contains("--help") || rest.contains("-h") {
            console.print(sub.configuration.helpText(tool: toolName))
            return .success
        }
        let command: any SlimCommand
        do {
            let parsed = try ParsedArguments(rest, specs: sub.configuration.options,
                                             allowsPositionals: sub.configuration.allowsPositionals)
            command = try sub.init(parsed)
            try command.validate()
        } catch {
            console.log("error: \(error.message). See '\(toolName) \(sub.configuration.name) --help'.")
            return .usage
        }
        do {
            try command.run(console: console)
            return .success
        } catch let e as UsageError {
            console.log("error: \(e.message). See '\(toolName) \(sub.configuration.name) --help'.")
            return .usage
        } catch let e as CommandExit {
            return e.code
        } catch {
            console.log("error: \(oneLine(error))")
            return .failure
        }
    }

    static func find(_ name: String) -> (any SlimCommand.Type)? {
        subcommands.first { $0.configuration.name == name }
    }

    /// Errors print on one line: the first line of their description.
    static func oneLine(_ error: any Error) -> String {
        let text = String(describing: error)
        return text.split(separator: "\n", omittingEmptySubsequences: true).first.map(String.init) ?? text
    }

    public static func rootHelp() -> String {
        var s = """
        OVERVIEW: SliM-LLM mixed-precision post-training quantization for LLaMA-family models.

        Loads Hugging Face llama checkpoints (safetensors, sharded or not) or llama GGUF files,
        and tokenizes, inspects and converts them.

        USAGE: \(toolName) <subcommand> [options]

        OPTIONS:
          --version     Show the version.
          -h, --help    Show help information.

        SUBCOMMANDS:

        """
        let width = (subcommands.map { $0.configuration.name.count }.max() ?? 0) + 4
        for sub in subcommands {
            s += "  " + sub.configuration.name.padding(toLength: width, withPad: " ", startingAt: 0)
                + sub.configuration.abstract + "\n"
        }
        s += "\n  See '\(toolName) help <subcommand>' for detailed help.\n"
        return s
    }
}

/// Thrown by a command that has already reported its outcome and wants a specific exit code.
public struct CommandExit: Error {
    public let code: ExitCode
    public init(_ code: ExitCode) { self.code = code }
}
