import Foundation
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest
@testable import SlimFrontend

/// `quantize` through the CLI, in process, on stories260K with 4 × 64-token windows and group
/// size 32 (each run takes well under a second in a debug build).
final class QuantizeCommandTests: XCTestCase {
    var dir = ""
    var calibration = ""
    var heldOut = ""
    var model = ""

    override func setUpWithError() throws {
        model = try TestFixtures.stories260KDir()
        dir = try TestFixtures.temporaryDirectory(self)
        let excerpt = try TestFixtures.shared("data/wikitext-2-raw/wiki.train.excerpt.txt")
        let valid = try TestFixtures.shared("data/wikitext-2-raw/wiki.valid.raw")
        calibration = try Self.prefix(of: excerpt, bytes: 60_000, to: dir + "/calibration.txt")
        heldOut = try Self.prefix(of: valid, bytes: 30_000, to: dir + "/held-out.txt")
    }

    override func tearDown() {
        QuantizeCommand.testStopAfterLayer = nil
    }

    /// The first `bytes` of a text file, cut after a newline.
    static func prefix(of path: String, bytes: Int, to target: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else { throw FixtureError("cannot read \(path)") }
        var head = data.prefix(bytes)
        if let newline = head.lastIndex(of: 0x0A) { head = head.prefix(through: newline) }
        try Data(head).write(to: URL(fileURLWithPath: target))
        return target
    }

    func quantize(_ method: String, bits: Int, out: String, _ extra: [String] = []) -> (code: ExitCode, out: String, err: String) {
        runCLI(["quantize", "--model", model, "--method", method, "--bits", String(bits), "--group-size", "32",
                "--samples", "4", "--seq-len", "64", "--calibration", calibration, "--threads", "2", "--out", out] + extra)
    }

    func perplexity(_ modelPath: String) throws -> Double {
        let r = runCLI(["eval-ppl", "--model", modelPath, "--dataset", heldOut, "--ctx", "128", "--max-windows", "8", "--json"])
        XCTAssertEqual(r.code, .success, r.err)
        return try XCTUnwrap(try JSON.parse(string: r.out)["ppl"]?.double)
    }

    // MARK: End to end

    func testRTNGPTQAndSlimCheckpointsLoadAndEvaluate() throws {
        let rtn2 = quantize("rtn", bits: 2, out: dir + "/rtn2")
        XCTAssertEqual(rtn2.code, .success, rtn2.err)
        XCTAssertTrue(rtn2.out.contains("rtn 2-bit, group 32, 2.0000 bits/weight"), rtn2.out)
        XCTAssertFalse(rtn2.err.contains("calibration:"), "RTN reads no calibration text")
        let gptq4 = quantize("gptq", bits: 4, out: dir + "/gptq4")
        XCTAssertEqual(gptq4.code, .success, gptq4.err)
        XCTAssertTrue(gptq4.err.contains("calibration: calibration.txt"), gptq4.err)
        XCTAssertTrue(gptq4.err.contains("layer 5/5 mlp.down_proj"), gptq4.err)
        let slim = quantize("slim", bits: 2, out: dir + "/slim2", ["--json"])
        XCTAssertEqual(slim.code, .success, slim.err)
        XCTAssertTrue(slim.err.contains("i*="), "SBA choices are reported: \(slim.err)")

        // Packed checkpoints: five tensors per linear instead of the weight, others as stored.
        for name in ["rtn2", "gptq4", "slim2"] {
            let loaded = try LoadedModel(path: dir + "/" + name)
            XCTAssertEqual(loaded.config.packing?.groupSize, 32)
            XCTAssertNil(loaded.weights.tensorInfo("model.layers.0.mlp.down_proj.weight"))
            XCTAssertEqual(loaded.weights.tensorInfo("model.layers.0.mlp.down_proj.qweight")?.dtype, .u8)
            XCTAssertEqual(loaded.weights.tensorInfo("model.layers.0.mlp.down_proj.scales")?.dtype, .f16)
            XCTAssertEqual(loaded.weights.tensorInfo("model.layers.0.input_layernorm.weight")?.dtype, .f32)
            XCTAssertEqual(loaded.weights.tensorNames.count, 48 + 35 * 4)
            for file in ["tokenizer.json", "tokenizer_config.json", "allocation.json"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/\(name)/" + file), "\(name)/\(file)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/\(name).work"))
        }
        let config = try XCTUnwrap(WorkDirectoryJSON.read(dir + "/slim2/config.json"))
        let q = try XCTUnwrap(config["quantization_config"])
        XCTAssertEqual(q["format"]?.string, "slim-packed")
        XCTAssertEqual(q["format_version"]?.int, 1)
        XCTAssertEqual(q["method"]?.string, "slim")
        XCTAssertEqual(q["samples"]?.int, 4)
        XCTAssertEqual(q["seq_len"]?.int, 64)
        XCTAssertEqual(q["calibration_sha256"]?.string?.count, 64)
        XCTAssertEqual(q["tool_version"]?.string, SlimQuantCommand.version)
        XCTAssertEqual(config["hidden_size"]?.int, 64, "the source config is kept")

        // --json summary; SBA moves as many full-width groups to N−1 as to N+1 and leaves
        // down_proj's 12-wide last group at N, so every report averages exactly N bits per weight.
        let summary = try JSON.parse(string: slim.out)
        let histogram = try XCTUnwrap(summary["group_histogram"]?.object)
        let low = histogram["1"]?.int ?? 0, mid = histogram["2"]?.int ?? 0, high = histogram["3"]?.int ?? 0
        XCTAssertEqual(low, high)
        XCTAssertGreaterThan(low, 0)
        XCTAssertEqual(low + mid + high, 5 * (2 + 2 + 2 + 2 + 2 + 2 + 6))
        XCTAssertEqual(summary["modules"]?.array?.count, 35)
        XCTAssertEqual(summary["average_bits"]?.double, 2)
        let allocation = try AllocationFileJSON.widthWeightedMean(dir + "/slim2/allocation.json")
        XCTAssertEqual(allocation.mean, 2, "allocation.json averages exactly N bits per weight")
        XCTAssertEqual(allocation.shortGroupBits, [2], "the short last groups stay at N")
        XCTAssertEqual(q["average_bits"]?.double, 2)
        let inspected = runCLI(["inspect", "--model", dir + "/slim2", "--json", "--no-tensors"])
        XCTAssertEqual(inspected.code, .success, inspected.err)
        let packing = try JSON.parse(string: inspected.out)["packing"]
        XCTAssertEqual(packing?["total"]?["codes"]?.double, 2, "packed codes: 2 bits per weight, no padding")

        // Loose PPL ordering on held-out text: fp ≤ 4-bit GPTQ ≤ 2-bit SliM ≤ 2-bit RTN.
        let fp = try perplexity(model)
        let pGPTQ = try perplexity(dir + "/gptq4"), pSlim = try perplexity(dir + "/slim2"), pRTN = try perplexity(dir + "/rtn2")
        XCTAssertLessThanOrEqual(fp, pGPTQ * 1.01)
        XCTAssertLessThan(pGPTQ, pSlim)
        XCTAssertLessThan(pSlim, pRTN)
        try checkInt8Activations(dir + "/slim2", fp32Perplexity: pSlim)

        // The same model as fake-quantized weights (convert --dequantize, the scalar reference
        // decoder): F32 gives the packed kernels' perplexity to float rounding, F16 within 0.1 %.
        for (dtype, tolerance) in [("f32", 1e-5), ("f16", 1e-3)] {
            let target = dir + "/slim2-" + dtype
            let r = runCLI(["convert", "--dequantize", "--from", dir + "/slim2", "--out", target, "--dtype", dtype])
            XCTAssertEqual(r.code, .success, r.err)
            let plain = try LoadedModel(path: target)
            XCTAssertNil(plain.config.packing)
            XCTAssertEqual(plain.weights.tensorInfo("model.layers.0.mlp.down_proj.weight")?.dtype, dtype == "f32" ? .f32 : .f16)
            XCTAssertTrue(FileManager.default.fileExists(atPath: target + "/allocation.json"))
            let p = try perplexity(target)
            XCTAssertEqual(pSlim, p, accuracy: tolerance * p, "packed \(pSlim) vs \(dtype) fake-quant \(p)")
        }
        let twice = runCLI(["quantize", "--model", dir + "/slim2", "--method", "rtn", "--bits", "2", "--out", dir + "/twice"])
        XCTAssertEqual(twice.code, .failure)
        XCTAssertTrue(twice.err.contains("already a slim-packed checkpoint"), twice.err)
        let notPacked = runCLI(["convert", "--dequantize", "--from", model, "--out", dir + "/nope"])
        XCTAssertEqual(notPacked.code, .failure)
        XCTAssertTrue(notPacked.err.contains("not a slim-packed checkpoint"), notPacked.err)

        // --format fake-quant writes F16 weights directly (its propagation then uses them).
        let fake = quantize("slim", bits: 2, out: dir + "/slim2-fake", ["--format", "fake-quant"])
        XCTAssertEqual(fake.code, .success, fake.err)
        let fakeModel = try LoadedModel(path: dir + "/slim2-fake")
        XCTAssertNil(fakeModel.config.packing)
        XCTAssertEqual(fakeModel.weights.tensorInfo("model.layers.0.mlp.down_proj.weight")?.dtype, .f16)
        let ternary = quantize("slim", bits: 2, out: dir + "/x", ["--reference-compat", "all"])
        XCTAssertEqual(ternary.code, .usage)
        XCTAssertTrue(ternary.err.contains("--format fake-quant"), ternary.err)
    }

    /// --unquantized-dtype converts the embedding, classifier and norms (not the packed tensors);
    /// an F16 checkpoint evaluates within F16 rounding of the F32 one.
    /// `--activations int8` on a packed checkpoint. A decode step (the integer GEMV) and a prefill
    /// of the same tokens (the fp32 kernels on the int8-rounded activations) compute the same
    /// product up to float summation order, but rounding to int8 is discontinuous: a 1e-6
    /// difference can move a value across a rounding boundary, and through the layers the two
    /// paths drift apart by int8 noise, as much as int8 differs from fp32 (measured on this model:
    /// up to 2.3 % of the logit range, mean 1.1 %, vs 3.3 % and 1.2 % against fp32). So the two
    /// int8 paths are held to that noise, not to float rounding; a wrong block layout or offset
    /// correction is far outside it. eval-ppl then measures what generate decodes: the perplexity
    /// moves (1.1 % on this 2-bit 260K-parameter model), and a model without packed linears is
    /// refused instead of silently running fp32.
    func checkInt8Activations(_ path: String, fp32Perplexity: Double) throws {
        let loaded = try LoadedModel(path: path)
        let runtime = LlamaModel(weights: try LlamaWeights(model: loaded, packedActivations: .int8), threads: 2)
        let exact = LlamaModel(weights: try LlamaWeights(model: loaded), threads: 2)
        let tokens = (0..<24).map { ($0 * 37 + 5) % loaded.config.vocabSize }
        let vocab = loaded.config.vocabSize
        let prefilled = try InferenceSession(model: runtime, capacity: 32).prefill(tokens, logits: .all)
        let fp32 = try InferenceSession(model: exact, capacity: 32).prefill(tokens, logits: .all)
        let session = try InferenceSession(model: runtime, capacity: 32)
        var paths = [Double](), int8Noise = [Double]()
        for (i, token) in tokens.enumerated() {
            let step = i == 0 ? try session.prefill([token], logits: .last) : try session.step(token)
            let want = prefilled[(i * vocab)..<((i + 1) * vocab)], reference = fp32[(i * vocab)..<((i + 1) * vocab)]
            XCTAssertFalse(step.contains { !$0.isFinite }, "position \(i): non-finite decode logits")
            let range = Double(reference.max()! - reference.min()!)
            paths.append(zip(step, want).map { abs(Double($0) - Double($1)) }.max()! / range)
            int8Noise.append(zip(want, reference).map { abs(Double($0) - Double($1)) }.max()! / range)
        }
        let mean = { (v: [Double]) in v.reduce(0, +) / Double(v.count) }
        XCTAssertLessThanOrEqual(paths.max()!, 0.06, "decode vs prefill logits with int8 activations: \(paths)")
        XCTAssertLessThanOrEqual(mean(paths), 2 * mean(int8Noise), "decode vs prefill \(paths), int8 vs fp32 \(int8Noise)")

        let r = runCLI(["eval-ppl", "--model", path, "--dataset", heldOut, "--ctx", "128", "--max-windows", "8", "--json",
                        "--activations", "int8"])
        XCTAssertEqual(r.code, .success, r.err)
        let p8 = try XCTUnwrap(try JSON.parse(string: r.out)["ppl"]?.double)
        XCTAssertNotEqual(p8, fp32Perplexity, "int8 activations must change the numerics")
        XCTAssertEqual(p8, fp32Perplexity, accuracy: 0.03 * fp32Perplexity)
        let generated = runCLI(["generate", "--model", path, "--prompt", "Once upon a time", "-n", "8", "--activations", "int8"])
        XCTAssertEqual(generated.code, .success, generated.err)

        let dense = runCLI(["eval-ppl", "--model", model, "--dataset", heldOut, "--ctx", "128", "--activations", "int8"])
        XCTAssertEqual(dense.code, .failure)
        XCTAssertTrue(dense.err.contains("'--activations int8' applies to packed checkpoints"), dense.err)
        XCTAssertTrue(dense.err.contains(model), dense.err)
        XCTAssertEqual(dense.err.components(separatedBy: "error:").count, 2, "one error line: \(dense.err)")
    }

    func testUnquantizedTensorsCanBeStoredAs16Bit() throws {
        let base = quantize("rtn", bits: 4, out: dir + "/rtn4")
        XCTAssertEqual(base.code, .success, base.err)
        for dtype in ["f16", "bf16"] {
            let r = quantize("rtn", bits: 4, out: dir + "/rtn4-" + dtype, ["--unquantized-dtype", dtype])
            XCTAssertEqual(r.code, .success, r.err)
            let loaded = try LoadedModel(path: dir + "/rtn4-" + dtype)
            for name in ["model.embed_tokens.weight", "lm_head.weight", "model.norm.weight", "model.layers.0.input_layernorm.weight"] {
                XCTAssertEqual(loaded.weights.tensorInfo(name)?.dtype.rawValue, dtype.uppercased(), name)
            }
            XCTAssertEqual(loaded.weights.tensorInfo("model.layers.0.mlp.down_proj.scales")?.dtype, .f16)
            XCTAssertEqual(loaded.weights.tensorInfo("model.layers.0.mlp.down_proj.qweight")?.dtype, .u8)
        }
        let p32 = try perplexity(dir + "/rtn4"), p16 = try perplexity(dir + "/rtn4-f16")
        XCTAssertEqual(p16, p32, accuracy: 2e-3 * p32)
        XCTAssertEqual(quantize("rtn", bits: 4, out: dir + "/x", ["--unquantized-dtype", "f8"]).code, .usage)
    }

    // MARK: Resume

    func testInterruptedRunResumesToTheSameBytes() throws {
        let straight = quantize("slim", bits: 3, out: dir + "/straight")
        XCTAssertEqual(straight.code, .success, straight.err)

        QuantizeCommand.testStopAfterLayer = 2
        let stopped = quantize("slim", bits: 3, out: dir + "/staged")
        XCTAssertEqual(stopped.code, .interrupted, stopped.err)
        XCTAssertTrue(stopped.err.contains("3 of 5 layers are saved in \(dir)/staged.work"), stopped.err)
        XCTAssertTrue(stopped.err.contains("run the same command again to resume"), stopped.err)
        QuantizeCommand.testStopAfterLayer = nil

        let changed = quantize("slim", bits: 3, out: dir + "/staged", ["--seed", "1"])
        XCTAssertEqual(changed.code, .failure)
        XCTAssertTrue(changed.err.contains("different parameters") && changed.err.contains("seed 0 → 1"), changed.err)

        let resumed = quantize("slim", bits: 3, out: dir + "/staged")
        XCTAssertEqual(resumed.code, .success, resumed.err)
        XCTAssertTrue(resumed.err.contains("resuming at layer 3 of 5"), resumed.err)
        XCTAssertFalse(resumed.err.contains("layer 1/5 self_attn.q_proj"), "finished layers are not redone")
        for file in ["config.json", "allocation.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] {
            let a = FileManager.default.contents(atPath: dir + "/straight/" + file)
            let b = FileManager.default.contents(atPath: dir + "/staged/" + file)
            XCTAssertNotNil(a)
            XCTAssertTrue(a == b, "\(file) differs after resuming")
        }

        // --no-resume discards a saved state.
        QuantizeCommand.testStopAfterLayer = 0
        XCTAssertEqual(quantize("gptq", bits: 2, out: dir + "/fresh").code, .interrupted)
        QuantizeCommand.testStopAfterLayer = nil
        let fresh = quantize("gptq", bits: 2, out: dir + "/fresh", ["--no-resume"])
        XCTAssertEqual(fresh.code, .success, fresh.err)
        XCTAssertFalse(fresh.err.contains("resuming"), fresh.err)
    }

    func testAllocationReuseThroughTheCLI() throws {
        XCTAssertEqual(quantize("slim", bits: 2, out: dir + "/a").code, .success)
        let reuse = quantize("slim", bits: 2, out: dir + "/b", ["--allocation", dir + "/a/allocation.json"])
        XCTAssertEqual(reuse.code, .success, reuse.err)
        XCTAssertFalse(reuse.err.contains("i*="), "no search with a given allocation")
        XCTAssertEqual(FileManager.default.contents(atPath: dir + "/a/model.safetensors"),
                       FileManager.default.contents(atPath: dir + "/b/model.safetensors"))
        let other = quantize("slim", bits: 3, out: dir + "/c", ["--allocation", dir + "/a/allocation.json"])
        XCTAssertEqual(other.code, .failure)
        XCTAssertTrue(other.err.contains("allocation targets 2 bits, but --bits is 3"), other.err)
    }

    // MARK: Errors

    func testUsageAndInputErrors() throws {
        let bad = runCLI(["quantize", "--model", model, "--method", "slim", "--bits", "9", "--out", dir + "/x"])
        XCTAssertEqual(bad.code, .usage)
        XCTAssertTrue(bad.err.contains("'--bits'"), bad.err)
        let slim1 = runCLI(["quantize", "--model", model, "--method", "slim", "--bits", "1", "--out", dir + "/x"])
        XCTAssertEqual(slim1.code, .usage)
        XCTAssertTrue(slim1.err.contains("bits must be 2…7 for slim"), slim1.err)
        XCTAssertEqual(runCLI(["quantize", "--model", model, "--method", "awq", "--bits", "4", "--out", dir + "/x"]).code, .usage)
        XCTAssertEqual(runCLI(["quantize", "--model", model, "--bits", "4", "--out", dir + "/x"]).code, .usage)
        let both = quantize("gptq", bits: 4, out: dir + "/x", ["--dataset", "ptb"])
        XCTAssertEqual(both.code, .usage)
        XCTAssertTrue(both.err.contains("cannot be combined"), both.err)
        XCTAssertEqual(quantize("gptq", bits: 4, out: dir + "/x", ["--data-dir", dir]).code, .usage)
        let compat = quantize("slim", bits: 2, out: dir + "/x", ["--reference-compat", "doubleDamp,warp"])
        XCTAssertEqual(compat.code, .usage)
        XCTAssertTrue(compat.err.contains("'warp'"), compat.err)

        let tiny = dir + "/tiny.txt"
        try "One day.".write(toFile: tiny, atomically: true, encoding: .utf8)
        let short = runCLI(["quantize", "--model", model, "--method", "gptq", "--bits", "4", "--group-size", "32",
                            "--samples", "4", "--seq-len", "64", "--calibration", tiny, "--out", dir + "/x"])
        XCTAssertEqual(short.code, .failure)
        XCTAssertTrue(short.err.contains("tiny.txt") && short.err.contains("too short for one 64-token sample"), short.err)

        // An allocation made for another model.
        let foreign = dir + "/foreign.json"
        try """
        {"format": "slim-quant-allocation", "version": 1, "model": "other", "method": "slim", "bits": 2,
         "group_size": 32, "seed": 0, "tool_version": "0.1.0",
         "shapes": {"self_attn.q_proj": [576, 576]}, "layers": []}
        """.write(toFile: foreign, atomically: true, encoding: .utf8)
        let wrong = quantize("slim", bits: 2, out: dir + "/x", ["--allocation", foreign])
        XCTAssertEqual(wrong.code, .failure)
        XCTAssertTrue(wrong.err.contains("foreign.json") && wrong.err.contains("does not fit the model"), wrong.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/x"), "no output after an error")
    }
}

/// Small JSON readers for the assertions above.
enum WorkDirectoryJSON {
    static func read(_ path: String) throws -> JSON? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try JSON.parse([UInt8](data))
    }
}

enum AllocationFileJSON {
    /// Mean bits per weight of an allocation.json, computed from its own shapes (each group
    /// weighted by its columns × the module's rows), and the bit widths found on last groups
    /// shorter than the group size.
    static func widthWeightedMean(_ path: String) throws -> (mean: Double, shortGroupBits: Set<Int>) {
        let json = try XCTUnwrap(try WorkDirectoryJSON.read(path))
        let groupSize = try XCTUnwrap(json["group_size"]?.int)
        var total = 0, weights = 0
        var short: Set<Int> = []
        for layer in json["layers"]?.array ?? [] {
            for (key, bits) in layer.object?.pairs ?? [] {
                let shape = try XCTUnwrap(json["shapes"]?[key]?.array?.compactMap(\.int))
                for (g, b) in (bits.array ?? []).enumerated() {
                    let width = min(groupSize, shape[1] - g * groupSize)
                    total += (b.int ?? 0) * width * shape[0]
                    weights += width * shape[0]
                    if width < groupSize { short.insert(b.int ?? 0) }
                }
            }
        }
        return (Double(total) / Double(max(weights, 1)), short)
    }
}
