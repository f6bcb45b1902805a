import Foundation
import SlimIO
import SlimTestSupport
import XCTest
@testable import SlimFrontend

final class RuntimeCommandTests: XCTestCase {
    /// ../shared/README.md: greedy continuation of "Once upon a time" (BOS prepended).
    func testGenerateReproducesStories260KContinuation() throws {
        let model = try TestFixtures.shared("models/stories260K")
        let r = runCLI(["generate", "--model", model, "--prompt", "Once upon a time", "--max-tokens", "40"])
        XCTAssertEqual(r.code, .success, r.err)
        XCTAssertTrue(r.out.hasPrefix("Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."), r.out)
        XCTAssertTrue(r.err.contains("40 new tokens"), r.err)
    }

    func testSeededSamplingIsReproducible() throws {
        let model = try TestFixtures.shared("models/stories260K")
        let args = ["generate", "--model", model, "--prompt", "Once upon a time", "--max-tokens", "20", "--temperature", "0.9", "--top-k", "40", "--seed", "7"]
        let a = runCLI(args), b = runCLI(args)
        XCTAssertEqual(a.code, .success, a.err)
        XCTAssertEqual(a.out, b.out)
        XCTAssertEqual(runCLI(["generate", "--model", model, "--prompt", "x", "--top-k", "3"]).code, .usage)
    }

    /// Generation stops when prompt plus new tokens fill the context window (--ctx, default the
    /// model's max_position_embeddings), says so, and refuses a prompt that already fills it.
    func testGenerateStopsAtTheContextWindow() throws {
        let model = try TestFixtures.shared("models/stories260K")
        let prompt = ["generate", "--model", model, "--prompt", "Once upon a time", "--ignore-eos"]
        let full = runCLI(prompt + ["--max-tokens", "40", "--ctx", "16"])  // 5 prompt tokens with BOS
        XCTAssertEqual(full.code, .success, full.err)
        XCTAssertTrue(full.err.contains("11 new tokens"), full.err)
        XCTAssertTrue(full.err.contains("stopped at the end of the 16-token context window"), full.err)
        let reference = runCLI(prompt + ["--max-tokens", "11"])
        XCTAssertEqual(full.out, reference.out, "the window only ends generation early")
        XCTAssertFalse(reference.err.contains("context window"), reference.err)

        let tooLong = runCLI(prompt + ["--ctx", "5"])
        XCTAssertEqual(tooLong.code, .usage)
        XCTAssertTrue(tooLong.err.contains("the prompt is 5 tokens, which fills the context window of 5 (--ctx)"), tooLong.err)
        let beyond = runCLI(prompt + ["--max-tokens", "2", "--ctx", "4096"])
        XCTAssertEqual(beyond.code, .success, beyond.err)
        XCTAssertTrue(beyond.err.contains("warning: --ctx 4096 exceeds the model's max_position_embeddings (2048)"), beyond.err)
        let data = try TestFixtures.shared("data")
        let ppl = runCLI(["eval-ppl", "--model", model, "--dataset", "wikitext2", "--data-dir", data, "--ctx", "4096", "--max-windows", "1"])
        XCTAssertEqual(ppl.code, .success, ppl.err)
        XCTAssertTrue(ppl.err.contains("warning: --ctx 4096 exceeds the model's max_position_embeddings (2048)"), ppl.err)
    }

    func testBenchPrintsBothTests() throws {
        let model = try TestFixtures.shared("models/stories260K")
        let r = runCLI(["bench", "--model", model, "-p", "64", "-n", "8", "-r", "2", "--json"])
        XCTAssertEqual(r.code, .success, r.err)
        let rows = try XCTUnwrap(try JSON.parse(string: r.out).array)
        XCTAssertEqual(rows.map { $0["test"]?.string }, ["pp64", "tg8"])
        for row in rows {
            let rate = try XCTUnwrap(row["tokens_per_second"]?.double)
            XCTAssertTrue(rate.isFinite && rate > 0)
            XCTAssertEqual(row["samples"]?.array?.count, 2)
        }
        let table = runCLI(["bench", "--model", model, "-p", "32", "-n", "0", "-r", "1"])
        XCTAssertTrue(table.out.contains("| pp32 |") || table.out.contains("pp32 |"), table.out)
        XCTAssertEqual(runCLI(["bench", "--model", model, "-p", "0", "-n", "0"]).code, .usage)

        // --depth: both tests after an untimed context, named as llama-bench names them; the
        // cache holds the context and the test (the depth alone would overflow it).
        let deep = runCLI(["bench", "--model", model, "-p", "16", "-n", "4", "-d", "0,200", "-r", "1", "--json"])
        XCTAssertEqual(deep.code, .success, deep.err)
        let deepRows = try XCTUnwrap(try JSON.parse(string: deep.out).array)
        XCTAssertEqual(deepRows.map { $0["test"]?.string }, ["pp16", "tg4", "pp16 @ d200", "tg4 @ d200"])
        XCTAssertEqual(deepRows.map { $0["n_depth"]?.int }, [0, 0, 200, 200])
        XCTAssertEqual(rows.map { $0["n_depth"]?.int }, [0, 0])
    }

    /// A BF16 / F16 model: `--weights native` (the default) keeps the weights 16-bit and gives
    /// the perplexity of `--weights fp32` exactly, and the same greedy continuation.
    func testNativeHalfWeightsGiveTheSameResultsAsFp32() throws {
        let gguf = try TestFixtures.shared("models/stories260K-gguf/stories260K-f32.gguf")
        let data = try TestFixtures.shared("data")
        let dir = try TestFixtures.temporaryDirectory(self)
        for dtype in ["bf16", "f16"] {
            let model = dir + "/stories-\(dtype)"
            let c = runCLI(["convert", "--from", gguf, "--out", model, "--dtype", dtype])
            XCTAssertEqual(c.code, .success, c.err)
            var ppl: [String: Double] = [:]
            var text: [String: String] = [:]
            for weights in ["native", "fp32"] {
                let r = runCLI(["eval-ppl", "--model", model, "--dataset", "wikitext2", "--data-dir", data, "--ctx", "128",
                                "--max-windows", "3", "--json", "--weights", weights])
                XCTAssertEqual(r.code, .success, r.err)
                ppl[weights] = try XCTUnwrap(try JSON.parse(string: r.out)["ppl"]?.double)
                let g = runCLI(["generate", "--model", model, "--prompt", "Once upon a time", "--max-tokens", "24", "--weights", weights])
                XCTAssertEqual(g.code, .success, g.err)
                text[weights] = g.out
            }
            XCTAssertEqual(ppl["native"], ppl["fp32"], dtype)
            XCTAssertTrue(ppl["native"]!.isFinite && ppl["native"]! > 1, "\(dtype): \(ppl)")
            XCTAssertEqual(text["native"], text["fp32"], dtype)
        }
    }

    /// `--kv-cache f16|bf16` on the CPU: fp16 perplexity within 0.1 % of the fp32 cache's (and not equal:
    /// the option reaches the runtime), and bench and generate run with it and say so.
    func testHalfKVCacheOnTheCPU() throws {
        let model = try TestFixtures.shared("models/stories260K")
        let data = try TestFixtures.shared("data")
        var ppl: [String: Double] = [:]
        for cache in ["f32", "f16", "bf16"] {
            let r = runCLI(["eval-ppl", "--model", model, "--dataset", "wikitext2", "--data-dir", data, "--ctx", "256",
                            "--max-windows", "2", "--json", "--kv-cache", cache])
            XCTAssertEqual(r.code, .success, r.err)
            ppl[cache] = try XCTUnwrap(try JSON.parse(string: r.out)["ppl"]?.double)
            XCTAssertEqual(r.err.contains("\(cache) KV cache"), cache != "f32", r.err)
        }
        let (f32, f16, bf16) = (try XCTUnwrap(ppl["f32"]), try XCTUnwrap(ppl["f16"]), try XCTUnwrap(ppl["bf16"]))
        XCTAssertNotEqual(f16, f32)
        XCTAssertEqual(f16, f32, accuracy: 1e-3 * f32)
        // bf16: 8× fp16's rounding; the NLL moves about 64× as far (HalfKVCacheTests).
        XCTAssertNotEqual(bf16, f16)
        XCTAssertEqual(bf16, f32, accuracy: 1e-2 * f32)

        let bench = runCLI(["bench", "--model", model, "-p", "16", "-n", "4", "-r", "1", "--kv-cache", "f16", "--json"])
        XCTAssertEqual(bench.code, .success, bench.err)
        let rows = try XCTUnwrap(try JSON.parse(string: bench.out).array)
        XCTAssertEqual(rows.map { $0["backend"]?.string }, ["CPU, f16 KV cache", "CPU, f16 KV cache"])
        let g = runCLI(["generate", "--model", model, "--prompt", "Once upon a time", "--max-tokens", "8", "--kv-cache", "f16"])
        XCTAssertEqual(g.code, .success, g.err)
        XCTAssertTrue(g.out.hasPrefix("Once upon a time"), g.out)
    }

    func testEvalPPLTooFewTokensIsAClearError() throws {
        let model = try TestFixtures.shared("models/stories260K")
        let dir = try TestFixtures.temporaryDirectory(self)
        let file = dir + "/tiny.txt"
        try "One day.".write(toFile: file, atomically: true, encoding: .utf8)
        let r = runCLI(["eval-ppl", "--model", model, "--dataset", file, "--ctx", "64"])
        XCTAssertEqual(r.code, .failure)
        XCTAssertTrue(r.err.contains("needs at least 64"), r.err)
    }
}
