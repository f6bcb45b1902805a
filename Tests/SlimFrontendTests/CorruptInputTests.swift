import Foundation
import SlimIO
import SlimTestSupport
import XCTest
@testable import SlimFrontend

/// The corrupt-input matrix of docs/ERRORS.md, through the CLI in process: every case gives one
/// error line naming the file and the problem, its documented exit status, and no output (nor
/// staging leftovers) where the command would have written one. Models are stories260K copies
/// with one thing broken.
final class CorruptInputTests: XCTestCase {
    var dir = ""
    var model = ""

    override func setUpWithError() throws {
        model = try TestFixtures.stories260KDir()
        dir = try TestFixtures.temporaryDirectory(self)
    }

    // MARK: Helpers

    /// Runs `args`, expects `code`, exactly one stderr line starting with "error: " that
    /// contains every string of `mentions`, and nothing at `noOutput` (nor a staging directory
    /// or temporary file beside it).
    @discardableResult
    func expectError(_ args: [String], code: ExitCode = .failure, mentions: [String], noOutput: String? = nil,
                     file: StaticString = #filePath, line: UInt = #line) -> String {
        let r = runCLI(args)
        XCTAssertEqual(r.code, code, r.err, file: file, line: line)
        let errorLines = r.err.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        XCTAssertEqual(errorLines.count, 1, "one error line: \(r.err)", file: file, line: line)
        for m in mentions { XCTAssertTrue(r.err.contains(m), "'\(m)' missing from: \(r.err)", file: file, line: line) }
        if let noOutput {
            XCTAssertFalse(FileManager.default.fileExists(atPath: noOutput), "\(noOutput) was written", file: file, line: line)
            let parent = (noOutput as NSString).deletingLastPathComponent
            let name = (noOutput as NSString).lastPathComponent
            let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [])
                .filter { $0.hasPrefix(".\(name).") }
            XCTAssertEqual(leftovers, [], "staging leftovers", file: file, line: line)
        }
        return r.err
    }

    /// A copy of stories260K in `dir/name` whose weights pass through `transform` (return nil
    /// to drop a tensor) and whose config.json through `config`.
    func corruptModel(_ name: String, config: (String) -> String = { $0 },
                      transform: (String, DType, [Int], [UInt8]) -> (DType, [Int], [UInt8])? = { ($1, $2, $3) }) throws -> String {
        let target = dir + "/" + name
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            try FileManager.default.copyItem(atPath: model + "/" + f, toPath: target + "/" + f)
        }
        let text = try String(contentsOfFile: model + "/config.json", encoding: .utf8)
        try config(text).write(toFile: target + "/config.json", atomically: true, encoding: .utf8)
        let source = try SafetensorsFile(path: model + "/model.safetensors")
        var writer = SafetensorsWriter()
        for tensorName in source.tensorNames {
            let view = try XCTUnwrap(source.tensor(tensorName))
            let bytes = view.withBytes { Array($0) }
            guard let (dtype, shape, data) = transform(tensorName, view.dtype, view.shape, bytes) else { continue }
            try data.withUnsafeBytes { try writer.add(name: tensorName, dtype: dtype, shape: shape, bytes: $0) }
        }
        try writer.write(to: target + "/model.safetensors")
        return target
    }

    func calibrationFile() throws -> String {
        try TestFixtures.shared("data/wikitext-2-raw/wiki.train.excerpt.txt")
    }

    func quantizeArgs(_ modelPath: String, out: String, calibration: String) -> [String] {
        ["quantize", "--model", modelPath, "--method", "gptq", "--bits", "4", "--group-size", "32", "--samples", "4",
         "--seq-len", "64", "--calibration", calibration, "--threads", "2", "--out", out]
    }

    // MARK: Weights files

    /// E1: a safetensors file cut short (a download that did not finish).
    func testTruncatedSafetensors() throws {
        let broken = try corruptModel("truncated")
        let weights = broken + "/model.safetensors"
        let data = try XCTUnwrap(FileManager.default.contents(atPath: weights))
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: weights))
        expectError(["inspect", "--model", broken], mentions: [weights, "truncated file?"])
        expectError(quantizeArgs(broken, out: dir + "/out", calibration: try calibrationFile()),
                    mentions: [weights, "truncated file?"], noOutput: dir + "/out")
    }

    /// E2: a GGUF file cut short.
    func testTruncatedGGUF() throws {
        let gguf = try TestFixtures.stories260KGGUF()
        let data = try XCTUnwrap(FileManager.default.contents(atPath: gguf))
        let cut = dir + "/cut.gguf"
        try data.prefix(100_000).write(to: URL(fileURLWithPath: cut))
        expectError(["inspect", "--model", cut], mentions: [cut, "extends past the end"])
        expectError(["convert", "--from", cut, "--out", dir + "/converted"], mentions: [cut], noOutput: dir + "/converted")
    }

    /// E3: an integer tensor where a float weight belongs.
    func testWrongDType() throws {
        let broken = try corruptModel("i32", transform: { name, dtype, shape, bytes in
            name == "model.layers.0.mlp.up_proj.weight" ? (.i32, shape, bytes) : (dtype, shape, bytes)
        })
        expectError(["inspect", "--model", broken],
                    mentions: [broken + "/model.safetensors", "model.layers.0.mlp.up_proj.weight is I32, expected a floating-point type"])
    }

    /// E4: a tensor whose shape disagrees with the config.
    func testShapeMismatch() throws {
        let broken = try corruptModel("shape", transform: { name, dtype, shape, bytes in
            name == "model.norm.weight" ? (dtype, [32], Array(bytes.prefix(128))) : (dtype, shape, bytes)
        })
        expectError(["eval-ppl", "--model", broken, "--dataset", try calibrationFile(), "--ctx", "64"],
                    mentions: [broken + "/model.safetensors", "model.norm.weight has shape [32], expected [64]"])
    }

    /// E5: a tensor the config needs is absent.
    func testMissingTensor() throws {
        let broken = try corruptModel("missing", transform: { name, dtype, shape, bytes in
            name == "model.layers.4.mlp.down_proj.weight" ? nil : (dtype, shape, bytes)
        })
        expectError(["generate", "--model", broken, "--prompt", "Once"],
                    mentions: [broken + "/model.safetensors", "missing model.layers.4.mlp.down_proj.weight [64, 172]"])
    }

    /// E6: NaN and Inf weights are refused by quantize, naming the tensor and element.
    func testNonFiniteWeights() throws {
        for (label, value) in [("nan", Float.nan), ("inf", -Float.infinity)] {
            let broken = try corruptModel(label, transform: { name, dtype, shape, bytes in
                guard name == "model.layers.0.self_attn.k_proj.weight" else { return (dtype, shape, bytes) }
                var copy = bytes
                withUnsafeBytes(of: value) { for i in 0..<4 { copy[4 * (2 * 64 + 7) + i] = $0[i] } }
                return (dtype, shape, copy)
            })
            let out = dir + "/out-" + label
            expectError(quantizeArgs(broken, out: out, calibration: try calibrationFile()),
                        mentions: [broken, "model.layers.0.self_attn.k_proj.weight holds \(value) at [2, 7]", "corrupt"],
                        noOutput: out)
        }
    }

    /// E7: a config for another architecture.
    func testUnknownArchitecture() throws {
        let broken = try corruptModel("arch") {
            $0.replacingOccurrences(of: "LlamaForCausalLM", with: "GPTNeoXForCausalLM")
                .replacingOccurrences(of: "\"llama\"", with: "\"gpt_neox\"")
        }
        expectError(["inspect", "--model", broken], mentions: [broken + "/config.json", "unsupported architecture \"GPTNeoXForCausalLM\""])
    }

    /// E8: a config.json that is not JSON.
    func testInvalidConfigJSON() throws {
        let broken = try corruptModel("json") { _ in "{\"hidden_size\": 64," }
        expectError(["inspect", "--model", broken], mentions: [broken + "/config.json", "not valid JSON"])
    }

    /// E16: a slim-packed checkpoint with an impossible bit width or a NaN scale.
    func testCorruptPackedCheckpoint() throws {
        let packed = dir + "/packed"
        let r = runCLI(["quantize", "--model", model, "--method", "rtn", "--bits", "2", "--group-size", "32", "--out", packed])
        XCTAssertEqual(r.code, .success, r.err)
        let source = try SafetensorsFile(path: packed + "/model.safetensors")
        func rewrite(_ name: String, _ change: (String, inout [UInt8]) -> Void) throws -> String {
            let target = dir + "/" + name
            try FileManager.default.copyItem(atPath: packed, toPath: target)
            var writer = SafetensorsWriter()
            writer.metadata = source.metadata
            for tensor in source.tensorNames {
                let view = try XCTUnwrap(source.tensor(tensor))
                var bytes = view.withBytes { Array($0) }
                change(tensor, &bytes)
                try bytes.withUnsafeBytes { try writer.add(name: tensor, dtype: view.dtype, shape: view.shape, bytes: $0) }
            }
            try FileManager.default.removeItem(atPath: target + "/model.safetensors")
            try writer.write(to: target + "/model.safetensors")
            return target
        }
        let bits = try rewrite("bits9") { name, bytes in if name == "model.layers.0.self_attn.q_proj.bits" { bytes[0] = 9 } }
        expectError(["eval-ppl", "--model", bits, "--dataset", try calibrationFile(), "--ctx", "64", "--max-windows", "1"],
                    mentions: [bits + "/model.safetensors", "model.layers.0.self_attn.q_proj: group 0 has 9 bits (allowed 1…8)"])
        let nan = try rewrite("nan-scale") { name, bytes in
            if name == "model.layers.2.mlp.up_proj.scales" { bytes[0] = 0x00; bytes[1] = 0x7E }  // fp16 NaN
        }
        expectError(["generate", "--model", nan, "--prompt", "Once"],
                    mentions: [nan, "model.layers.2.mlp.up_proj: scale of row 0, group 0 is not finite"])
    }

    // MARK: Out-of-memory-sized headers

    /// E9: size fields that would make the reader allocate or loop without bound.
    func testOutOfMemorySizedHeaders() throws {
        // safetensors: a header length of 1 TiB.
        let huge = try corruptModel("huge-header")
        var header = [UInt8](repeating: 0, count: 8)
        withUnsafeBytes(of: UInt64(1 << 40).littleEndian) { for i in 0..<8 { header[i] = $0[i] } }
        try Data(header + Array("{}".utf8)).write(to: URL(fileURLWithPath: huge + "/model.safetensors"))
        expectError(["inspect", "--model", huge], mentions: [huge + "/model.safetensors", "exceeds the 100000000-byte limit"])

        // config.json: 10^11 layers (used to spin building a tensor list of that length).
        let layers = try corruptModel("huge-config") {
            $0.replacingOccurrences(of: "\"num_hidden_layers\": 5", with: "\"num_hidden_layers\": 100000000000")
        }
        expectError(["inspect", "--model", layers],
                    mentions: [layers + "/config.json", "\"num_hidden_layers\" is 100000000000, above the supported maximum 4096"])

        // GGUF: 2^60 metadata pairs.
        var gguf = Array("GGUF".utf8)
        withUnsafeBytes(of: UInt32(3).littleEndian) { gguf += $0 }
        withUnsafeBytes(of: UInt64(0).littleEndian) { gguf += $0 }
        withUnsafeBytes(of: UInt64(1 << 60).littleEndian) { gguf += $0 }
        let ggufPath = dir + "/counts.gguf"
        try Data(gguf).write(to: URL(fileURLWithPath: ggufPath))
        expectError(["inspect", "--model", ggufPath], mentions: [ggufPath, "metadata"])
    }

    // MARK: Text inputs

    /// E10: evaluation text that is empty or shorter than one window.
    func testTinyAndEmptyDatasets() throws {
        let empty = dir + "/empty.txt", tiny = dir + "/tiny.txt"
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        try "Hello there.\n".write(toFile: tiny, atomically: true, encoding: .utf8)
        for text in [empty, tiny] {
            expectError(["eval-ppl", "--model", model, "--dataset", text, "--ctx", "64"],
                        mentions: [text, "needs at least 64 for a context of 64"])
        }
    }

    /// E11: calibration text shorter than one sample, empty, or not UTF-8.
    func testShortEmptyAndBinaryCalibration() throws {
        let short = dir + "/short.txt", empty = dir + "/empty.txt", binary = dir + "/binary.txt"
        try "One day.".write(toFile: short, atomically: true, encoding: .utf8)
        try "".write(toFile: empty, atomically: true, encoding: .utf8)
        try Data([0x4F, 0x6E, 0x63, 0x65, 0xFF, 0xFE, 0x20]).write(to: URL(fileURLWithPath: binary))
        for text in [short, empty] {
            expectError(quantizeArgs(model, out: dir + "/out", calibration: text),
                        mentions: [text, "too short for one 64-token sample"], noOutput: dir + "/out")
        }
        expectError(quantizeArgs(model, out: dir + "/out", calibration: binary), mentions: [binary, "not valid UTF-8"],
                    noOutput: dir + "/out")
    }

    /// E12: a BPE tokenizer.json without merges (and a multi-character vocabulary).
    func testTokenizerWithoutMerges() throws {
        let broken = try corruptModel("no-merges")
        let path = broken + "/tokenizer.json"
        var json = try JSON.parse([UInt8](XCTUnwrap(FileManager.default.contents(atPath: path))))
        guard case .object(var root) = json, case .object(var bpe)? = root["model"] else { return XCTFail("tokenizer.json layout") }
        bpe["merges"] = nil
        root["model"] = .object(bpe)
        json = .object(root)
        try json.serialized().write(toFile: path, atomically: true, encoding: .utf8)
        expectError(["tokenize", "--model", broken, "--text", "Once upon a time"], mentions: [path, "no merges"])
    }

    // MARK: Missing and odd paths

    /// E13: a model path that does not exist, an empty weights file, a directory as a file.
    func testMissingEmptyAndOddPaths() throws {
        expectError(["inspect", "--model", dir + "/nowhere"], mentions: [dir + "/nowhere", "no such file or directory"])
        let empty = try corruptModel("empty-weights")
        try Data().write(to: URL(fileURLWithPath: empty + "/model.safetensors"))
        expectError(["inspect", "--model", empty], mentions: [empty + "/model.safetensors", "too small"])
        let odd = dir + "/odd.txt"
        try FileManager.default.createDirectory(atPath: odd, withIntermediateDirectories: true)
        expectError(["eval-ppl", "--model", model, "--dataset", odd, "--ctx", "64"], mentions: [odd, "not a regular file"])
    }

    /// E14: an output path that holds something else is never replaced.
    func testForeignOutputIsNotReplaced() throws {
        let out = dir + "/mine"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try "keep me".write(toFile: out + "/notes.txt", atomically: true, encoding: .utf8)
        expectError(quantizeArgs(model, out: out, calibration: try calibrationFile()),
                    mentions: [out, "is not a slim-quant output: refusing to replace it"])
        XCTAssertEqual(try String(contentsOfFile: out + "/notes.txt", encoding: .utf8), "keep me")
    }

    // MARK: Usage

    /// E15: command-line mistakes exit 64 with one line pointing at --help.
    func testUsageErrorsExit64() throws {
        expectError(["quantize", "--model", model, "--bits", "4", "--out", dir + "/x"], code: .usage,
                    mentions: ["--method", "See 'slim-quant quantize --help'"], noOutput: dir + "/x")
        expectError(["eval-ppl", "--model", model, "--dataset", "wikitext2", "--ctx", "zero"], code: .usage, mentions: ["--ctx"])
    }
}
