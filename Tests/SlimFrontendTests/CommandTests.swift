import Foundation
import SlimIO
import SlimTestSupport
import XCTest
@testable import SlimFrontend

/// Runs the CLI in-process and captures stdout, stderr and the exit code.
func runCLI(_ args: [String]) -> (code: ExitCode, out: String, err: String) {
    var out = "", err = ""
    let console = Console(out: { out += $0 }, err: { err += $0 })
    let code = SlimQuantCommand.run(args, console: console)
    return (code, out, err)
}

final class CommandTests: XCTestCase {
    func testRootHelpVersionAndUnknown() {
        let help = runCLI(["--help"])
        XCTAssertEqual(help.code, .success)
        for sub in SlimQuantCommand.subcommands { XCTAssertTrue(help.out.contains(sub.configuration.name)) }
        XCTAssertEqual(runCLI(["--version"]).out, "slim-quant \(SlimQuantCommand.version)\n")
        let unknown = runCLI(["frobnicate"])
        XCTAssertEqual(unknown.code, .usage)
        XCTAssertEqual(unknown.err, "error: unknown subcommand 'frobnicate'. See 'slim-quant --help'.\n")
        XCTAssertEqual(runCLI([]).code, .usage)
    }

    /// Every subcommand has help with usage, options and at least one example.
    func testEverySubcommandHasHelpWithExamples() {
        for sub in SlimQuantCommand.subcommands {
            let name = sub.configuration.name
            for form in [[name, "--help"], [name, "-h"], ["help", name]] {
                let r = runCLI(form)
                XCTAssertEqual(r.code, .success, "\(form)")
                XCTAssertTrue(r.out.contains("USAGE: slim-quant \(name)"), "\(form)")
                XCTAssertTrue(r.out.contains("EXAMPLES:\n  slim-quant \(name)"), "\(form)")
                XCTAssertTrue(r.out.contains("--help"), "\(form)")
            }
        }
    }

    func testUsageErrorsExit64WithOneLine() {
        let cases: [[String]] = [
            ["inspect"],
            ["inspect", "--model"],
            ["inspect", "--model", "x", "--bogus"],
            ["tokenize", "--model", "x"],
            ["tokenize", "--model", "x", "--text", "a", "--file", "b"],
            ["tokenize", "--model", "x", "--dataset", "imagenet"],
            ["convert", "--from", "a.gguf", "--out", "o", "--dtype", "f8"],
        ]
        for c in cases {
            let r = runCLI(c)
            XCTAssertEqual(r.code, .usage, "\(c): \(r.err)")
            XCTAssertTrue(r.err.hasPrefix("error: "), "\(c)")
            XCTAssertEqual(r.err.filter { $0 == "\n" }.count, 1, "one line for \(c): \(r.err)")
        }
    }

    func testWorkErrorsExit1NamingTheFile() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let r = runCLI(["inspect", "--model", dir + "/missing"])
        XCTAssertEqual(r.code, .failure)
        XCTAssertTrue(r.err.contains(dir + "/missing"))
        // A corrupt safetensors file: the error names it and says what is wrong.
        try Data("{\"architectures\":[\"LlamaForCausalLM\"]}".utf8).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let bad = runCLI(["inspect", "--model", dir])
        XCTAssertEqual(bad.code, .failure)
        XCTAssertTrue(bad.err.contains("config.json"), bad.err)
        XCTAssertEqual(bad.err.filter { $0 == "\n" }.count, 1, bad.err)
    }

    func testTokenizeStories260K() throws {
        let model = try TestFixtures.shared("models/stories260K")
        let r = runCLI(["tokenize", "--model", model, "--text", "Once upon a time", "--ids-only"])
        XCTAssertEqual(r.code, .success, r.err)
        XCTAssertEqual(r.out, "1 403 407 261 378\n")
        let j = runCLI(["tokenize", "--model", model, "--text", "Once upon a time", "--json", "--no-special-tokens"])
        let json = try JSON.parse(string: j.out)
        XCTAssertEqual(json["count"], .int(4))
        XCTAssertEqual(json["tokens"]?[0], .string("▁Once"))
    }

    func testInspectJSONAndGGUFConvertRoundTrip() throws {
        let gguf = try TestFixtures.shared("models/stories260K-gguf/stories260K-f32.gguf")
        let out = try TestFixtures.temporaryDirectory(self) + "/converted"
        let c = runCLI(["convert", "--from", gguf, "--out", out])
        XCTAssertEqual(c.code, .success, c.err)
        // Refuses to overwrite without --force, succeeds with it.
        XCTAssertEqual(runCLI(["convert", "--from", gguf, "--out", out]).code, .failure)
        XCTAssertEqual(runCLI(["convert", "--from", gguf, "--out", out, "--force"]).code, .success)
        let inspected = runCLI(["inspect", "--model", out, "--json"])
        XCTAssertEqual(inspected.code, .success, inspected.err)
        let json = try JSON.parse(string: inspected.out)
        XCTAssertEqual(json["architecture"], .string("LlamaForCausalLM"))
        XCTAssertEqual(json["tensors"]?.array?.count, 48)
        XCTAssertEqual(json["dtypes"]?["F32"], .int(48))
        let direct = try JSON.parse(string: runCLI(["inspect", "--model", gguf, "--json"]).out)
        XCTAssertEqual(direct["parameters"], json["parameters"])
    }
}
