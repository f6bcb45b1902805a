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

final class InspectAllocationTests: XCTestCase {
    func testSummaryAndSVGFromAllocationFile() throws {
        let modelDir = try TestFixtures.shared("models/stories260K")
        let dir = try TestFixtures.temporaryDirectory(self)
        // A uniform 3-bit allocation for stories260K at group 32, written as the quantizer would.
        let shapes = ["self_attn.q_proj": [64, 64], "self_attn.k_proj": [32, 64], "self_attn.v_proj": [32, 64],
                      "self_attn.o_proj": [64, 64], "mlp.gate_proj": [172, 64], "mlp.up_proj": [172, 64], "mlp.down_proj": [64, 172]]
        let layer = shapes.mapValues { Array(repeating: 3, count: ($0[1] + 31) / 32) }
        let json: JSON = [
            "format": "slim-quant-allocation", "version": 1, "model": "stories260K", "method": "gptq", "bits": 3,
            "group_size": 32, "seed": 0, "tool_version": "test",
            "shapes": .object(JSONObject(shapes.map { ($0.key, JSON.array($0.value.map { .int(Int64($0)) })) })),
            "layers": .array(Array(repeating: .object(JSONObject(layer.map { ($0.key, JSON.array($0.value.map { .int(Int64($0)) })) })), count: 5)),
        ]
        try json.serialized().write(toFile: dir + "/allocation.json", atomically: true, encoding: .utf8)
        let r = runCLI(["inspect", "--allocation", dir + "/allocation.json", "--svg", dir + "/a.svg", "--model", modelDir])
        XCTAssertEqual(r.code, .success, r.err)
        XCTAssertTrue(r.out.contains("3.0000 bits per weight"), r.out)
        XCTAssertTrue(try String(contentsOfFile: dir + "/a.svg", encoding: .utf8).hasPrefix("<svg"))
        // Against a model with other shapes the allocation is refused, naming the file.
        let gguf = runCLI(["inspect", "--allocation", dir + "/allocation.json", "--model", try TestFixtures.smollm2Dir()])
        XCTAssertEqual(gguf.code, .failure)
        XCTAssertTrue(gguf.err.contains("allocation.json: allocation does not fit the model"), gguf.err)
        XCTAssertEqual(runCLI(["inspect", "--model", modelDir, "--svg", "x.svg"]).code, .usage)
    }
}
