import Foundation
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest

/// Parity with transformers on SmolLM2-135M (30 layers, GQA 9/3, tied 49,152-token head,
/// rope θ 1e5). Needs the prepared F32 directory (`SLIM_SMOLLM2_DIR`); skipped otherwise.
/// Tolerance as for stories260K: per row max|Δ| ≤ 1e-4 · max|ref|; mean NLL within 0.05 %.
final class SmolLM2ParityTests: XCTestCase {
    private func fixture() throws -> (LlamaModel, JSON) {
        let dir = try TestFixtures.smollm2Dir()
        return (try openModel(dir), try Golden.load("smollm2-135m.json.gz"))
    }

    /// Positions checked in a debug build; `SLIM_SLOW_TESTS=1` checks the whole 128-token window
    /// (causal attention: a prefix's logits do not depend on later tokens).
    private var checkedPrefix: Int { ProcessInfo.processInfo.environment["SLIM_SLOW_TESTS"] == "1" ? 128 : 24 }

    func testWindowPrefixMatchesTransformers() throws {
        let (model, golden) = try fixture()
        let window = try XCTUnwrap(golden["short"])
        let tokens = Array(try Golden.ints(window["tokens"]).prefix(checkedPrefix))
        let vocab = model.config.vocabSize
        var hidden = try model.embed(tokens)
        for l in 0..<model.config.numHiddenLayers { model.runLayer(l, hidden: &hidden) }

        var checkedRows = 0
        for (key, value) in try XCTUnwrap(window["rows"]?.object).pairs {
            let r = try XCTUnwrap(Int(key))
            guard r < tokens.count else { continue }
            let expected = try Golden.floats(value)
            let row = model.logits(from: HiddenStates(values: hidden.row(r), rows: 1, cols: hidden.cols), rows: .all)
            XCTAssertEqual(row.count, vocab)
            XCTAssertLessThanOrEqual(rowRelativeError(row[...], expected[...]), 1e-4, "row \(r)")
            checkedRows += 1
        }
        XCTAssertGreaterThanOrEqual(checkedRows, 2)
        let nll = try model.negativeLogLikelihoods(hidden: hidden, targets: Array(tokens.dropFirst()))
        let expectedNLL = Array(try Golden.floats(window["nll"]).prefix(tokens.count - 1))
        XCTAssertEqual(nll.count, expectedNLL.count)
        for (t, (a, e)) in zip(nll, expectedNLL).enumerated() {
            XCTAssertEqual(a, Double(e), accuracy: 1e-4 * max(1, Double(e)), "NLL at \(t)")
        }
        let mean = nll.reduce(0, +) / Double(nll.count)
        let expectedMean = expectedNLL.reduce(0.0) { $0 + Double($1) } / Double(expectedNLL.count)
        XCTAssertEqual(mean, expectedMean, accuracy: 5e-4 * expectedMean)
        if tokens.count == 128 {
            XCTAssertEqual(mean, try XCTUnwrap(window["mean_nll"]?.double), accuracy: 5e-4 * mean)
        }
    }

    func testGreedyContinuationMatchesTransformers() throws {
        let (model, golden) = try fixture()
        let greedy = try XCTUnwrap(golden["greedy"])
        let prompt = try Golden.ints(greedy["prompt"])
        // Six decode steps in a debug build (" Berlin. The capital of the"), all 16 when slow.
        let expected = Array(try Golden.ints(greedy["generated"]).prefix(checkedPrefix == 128 ? 16 : 6))
        XCTAssertEqual(expected.first, 11452, "\" Berlin\"")
        let session = try InferenceSession(model: model, capacity: 64)
        var sampler = Sampler.greedy
        XCTAssertEqual(try session.generate(prompt: prompt, maxNewTokens: expected.count, sampler: &sampler), expected)
    }

    /// The full 2048-token window (about 0.6 TFLOP): too slow for a debug build, so it runs only
    /// when `SLIM_SLOW_TESTS=1` (release: `swift test -c release`).
    func testFullWindowNLLMatchesTransformers() throws {
        guard ProcessInfo.processInfo.environment["SLIM_SLOW_TESTS"] == "1" else {
            throw XCTSkip("2048-token SmolLM2 window: set SLIM_SLOW_TESTS=1 to run")
        }
        let (model, golden) = try fixture()
        let window = try XCTUnwrap(golden["full"])
        let tokens = try Golden.ints(window["tokens"])
        XCTAssertEqual(tokens.count, 2048)
        var hidden = try model.embed(tokens)
        for l in 0..<model.config.numHiddenLayers { model.runLayer(l, hidden: &hidden) }
        let nll = try model.negativeLogLikelihoods(hidden: hidden, targets: Array(tokens.dropFirst()))
        let expectedNLL = try Golden.floats(window["nll"])
        var worst = 0.0
        for (a, e) in zip(nll, expectedNLL) { worst = max(worst, abs(a - Double(e)) / max(1, Double(e))) }
        XCTAssertLessThanOrEqual(worst, 1e-4, "worst per-position NLL error")
        let mean = nll.reduce(0, +) / Double(nll.count)
        XCTAssertEqual(mean, try XCTUnwrap(window["mean_nll"]?.double), accuracy: 5e-4 * mean)
        // Row maxima of every position (the classifier run a block at a time).
        let rowMax = try Golden.floats(window["row_max"])
        for r0 in stride(from: 0, to: tokens.count, by: 256) {
            let block = HiddenStates(values: Array(hidden.values[(r0 * hidden.cols)..<((r0 + 256) * hidden.cols)]), rows: 256, cols: hidden.cols)
            let logits = model.logits(from: block)
            for r in 0..<256 {
                let m = logits[(r * model.config.vocabSize)..<((r + 1) * model.config.vocabSize)].max()!
                XCTAssertEqual(m, rowMax[r0 + r], accuracy: 1e-4 * max(1, abs(rowMax[r0 + r])), "max of row \(r0 + r)")
            }
        }
    }
}
