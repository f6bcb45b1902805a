import Foundation
import SlimData
import SlimEval
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest
@testable import SlimFrontend

/// `slim-quant eval-ppl` against Hugging Face transformers (fp32, CPU) on WikiText-2 test.
///
/// Goldens: Fixtures/ppl/*.json from scripts/reference/hf_perplexity_goldens.py. The CLI runs
/// in-process with `--json`; its PPL must be within 0.05 % (relative) of transformers', its token
/// stream as long, and its window count and scored positions equal. Window NLLs are not part of
/// the CLI's JSON, so each window's mean NLL is checked through the same pieces the command
/// wires together (`LoadedModel`'s tokenizer, `DatasetLocator`, `PerplexityEvaluator`,
/// `RuntimeScorer`). SmolLM2's 2048-token windows cost seconds each in the test build, so its
/// CLI run covers only the first window and the evaluator both golden windows.
final class EvalPPLParityTests: XCTestCase {
    /// The bound on PPL (relative).
    static let pplTolerance = 5e-4
    /// Per-window mean NLL (nats, absolute); measured differences are below 1e-6.
    static let nllTolerance = 2e-4

    func testStories260KPaperProtocolMatchesTransformers() throws {
        try checkCLI(model: TestFixtures.stories260KDir(), golden: "stories260K-paper-ctx512.json")
        try checkWindows(model: TestFixtures.stories260KDir(), golden: "stories260K-paper-ctx512.json")
    }

    func testStories260KLlamaCppProtocolMatchesTransformers() throws {
        try checkCLI(model: TestFixtures.stories260KDir(), golden: "stories260K-llamacpp-ctx512.json")
        try checkWindows(model: TestFixtures.stories260KDir(), golden: "stories260K-llamacpp-ctx512.json")
    }

    /// SmolLM2-135M at ctx 2048: the CLI on the first window, the evaluator on both golden windows.
    func testSmolLM2PaperProtocolMatchesTransformers() throws {
        let model = try TestFixtures.smollm2Dir()
        try checkCLI(model: model, golden: "smollm2-135m-paper-ctx2048.json", windows: 1)
        try checkWindows(model: model, golden: "smollm2-135m-paper-ctx2048.json")
    }

    // MARK: - Checks

    /// Runs `eval-ppl --json` on the first `windows` golden windows (all when nil) and compares
    /// PPL, stream length, windows and scored positions.
    private func checkCLI(model: String, golden name: String, windows: Int? = nil,
                          file: StaticString = #filePath, line: UInt = #line) throws {
        let golden = try Golden(name)
        let n = windows ?? golden.windowMeanNLL.count
        XCTAssertLessThanOrEqual(n, golden.windowMeanNLL.count, file: file, line: line)
        let start = Date()
        let r = runCLI(["eval-ppl", "--model", model, "--dataset", "wikitext2", "--data-dir", try dataDir(),
                        "--protocol", golden.protocolName.rawValue, "--ctx", String(golden.ctx),
                        "--max-windows", String(n), "--json"])
        XCTAssertEqual(r.code, .success, r.err, file: file, line: line)
        let json = try JSON.parse(string: r.out)
        XCTAssertEqual(json["tokens"]?.int, golden.tokens, "token stream length (tokenizer drift?)", file: file, line: line)
        XCTAssertEqual(json["windows"]?.int, n, file: file, line: line)
        XCTAssertEqual(json["positions_scored"]?.int, n * golden.scoredPerWindow, file: file, line: line)
        let ppl = try XCTUnwrap(json["ppl"]?.double, "no ppl in \(r.out)", file: file, line: line)
        let expected = golden.perplexity(windows: n)
        let rel = abs(ppl - expected) / expected
        print(String(format: "EvalPPLParity: %@ CLI, %d window(s): ppl %.6f vs transformers %.6f, relative %.2e (%.1f s)",
                     name, n, ppl, expected, rel, Date().timeIntervalSince(start)))
        XCTAssertLessThan(rel, Self.pplTolerance, "\(name): ppl \(ppl) vs \(expected)", file: file, line: line)
    }

    /// Tokenizes and evaluates as the command does and compares the token stream's head, its
    /// length, every window's mean NLL and the PPL over all golden windows.
    private func checkWindows(model path: String, golden name: String,
                              file: StaticString = #filePath, line: UInt = #line) throws {
        let golden = try Golden(name)
        let start = Date()
        let loaded = try LoadedModel(path: path)
        let tokenizer = try loaded.tokenizer()
        let locator = DatasetLocator(dataDir: try dataDir())
        let text: String
        switch golden.protocolName {
        case .paper: text = try locator.text(.wikitext2, split: .test, protocol: .eval).text
        case .llamacpp: text = try loadTextFile(path: locator.locate(.wikitext2, split: .test).0)
        }
        let tokens = tokenizer.encode(text, addSpecialTokens: true)
        XCTAssertEqual(tokens.count, golden.tokens, "\(name): token stream length", file: file, line: line)
        XCTAssertEqual(Array(tokens.prefix(golden.firstIDs.count)), golden.firstIDs, "\(name): first ids", file: file, line: line)

        let bos = golden.protocolName == .llamacpp ? tokenizer.bosTokenID : nil
        let evaluator = PerplexityEvaluator(protocol: golden.protocolName, contextLength: golden.ctx,
                                            maxWindows: golden.windowMeanNLL.count, bosTokenID: bos)
        let scorer = RuntimeScorer(model: LlamaModel(weights: try LlamaWeights(model: loaded)))
        let result = try evaluator.evaluate(tokens: tokens, model: scorer)
        XCTAssertEqual(result.windowMeanNLL.count, golden.windowMeanNLL.count, file: file, line: line)
        var worst = 0.0
        for (w, (ours, ref)) in zip(result.windowMeanNLL, golden.windowMeanNLL).enumerated() {
            worst = max(worst, abs(ours - ref))
            XCTAssertEqual(ours, ref, accuracy: Self.nllTolerance, "\(name): window \(w) mean NLL", file: file, line: line)
        }
        XCTAssertEqual(result.positionsScored, golden.positionsScored, file: file, line: line)
        let rel = abs(result.perplexity - golden.ppl) / golden.ppl
        print(String(format: "EvalPPLParity: %@ evaluator, %d window(s): ppl %.6f vs transformers %.6f, relative %.2e, "
                     + "max window NLL diff %.2e (%.1f s)", name, result.windows, result.perplexity, golden.ppl, rel, worst,
                     Date().timeIntervalSince(start)))
        XCTAssertLessThan(rel, Self.pplTolerance, "\(name): ppl", file: file, line: line)
    }

    private func dataDir() throws -> String {
        _ = try TestFixtures.shared("data/wikitext-2-raw/wiki.test.raw")
        return TestFixtures.sharedDir + "/data"
    }
}

// MARK: - Golden files

/// One Fixtures/ppl/*.json file written by hf_perplexity_goldens.py.
private struct Golden {
    let protocolName: PerplexityProtocol
    let ctx: Int
    let tokens: Int
    let firstIDs: [Int]
    let positionsScored: Int
    let ppl: Double
    let windowMeanNLL: [Double]

    init(_ name: String) throws {
        let path = TestFixtures.committed("SlimFrontendTests", "ppl/" + name)
        let json = try JSON.parse(TestFixtures.committedBytes("SlimFrontendTests", "ppl/" + name))
        func int(_ key: String) throws -> Int {
            guard let v = json[key]?.int else { throw FixtureError("\(path): missing integer '\(key)'") }
            return v
        }
        guard let p = json["protocol"]?.string.flatMap(PerplexityProtocol.init(rawValue:)) else {
            throw FixtureError("\(path): missing or unknown 'protocol'")
        }
        guard let ppl = json["ppl"]?.double,
              let nll = json["window_mean_nll"]?.array?.compactMap(\.double), !nll.isEmpty,
              let ids = json["first_ids"]?.array?.compactMap(\.int) else {
            throw FixtureError("\(path): missing 'ppl', 'window_mean_nll' or 'first_ids'")
        }
        protocolName = p
        ctx = try int("ctx")
        tokens = try int("tokens")
        positionsScored = try int("positions_scored")
        self.ppl = ppl
        windowMeanNLL = nll
        firstIDs = ids
        guard try int("windows") == nll.count, ctx >= 2 else { throw FixtureError("\(path): inconsistent windows/ctx") }
    }

    /// Positions scored in one window by the protocol.
    var scoredPerWindow: Int { protocolName == .paper ? ctx - 1 : ctx - 1 - ctx / 2 }

    /// The protocol's PPL over the first `n` windows (every window scores the same count).
    func perplexity(windows n: Int) -> Double {
        exp(windowMeanNLL.prefix(n).reduce(0, +) / Double(n))
    }
}
