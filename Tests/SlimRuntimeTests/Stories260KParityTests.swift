import Foundation
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest

/// Parity with transformers on the real stories260K model (5 layers, GQA 8/4, untied head):
/// one 512-token WikiText-2 window, layer-input captures, and greedy generation.
/// Tolerance: per row, max|Δlogit| ≤ 1e-4 · max|reference logit|; mean NLL within 0.05 %.
final class Stories260KParityTests: XCTestCase {
    static let tolerance: Float = 1e-4

    private func fixture() throws -> (LlamaModel, JSON) {
        let dir = try TestFixtures.shared("models/stories260K")
        return (try openModel(dir), try Golden.load("stories260K.json.gz"))
    }

    func testWindowLogitsAndNLLMatchTransformers() throws {
        let (model, golden) = try fixture()
        let window = try XCTUnwrap(golden["window"])
        let tokens = try Golden.ints(window["tokens"])
        XCTAssertEqual(tokens.count, 512)
        let vocab = model.config.vocabSize
        var hidden = try model.embed(tokens)
        for l in 0..<model.config.numHiddenLayers { model.runLayer(l, hidden: &hidden) }
        let logits = model.logits(from: hidden)
        XCTAssertEqual(logits.count, tokens.count * vocab)

        // Full rows stored by the script.
        let rows = try XCTUnwrap(window["rows"]?.object)
        XCTAssertEqual(rows.keys.count, 4)
        for (key, value) in rows.pairs {
            let r = try XCTUnwrap(Int(key))
            let expected = try Golden.floats(value)
            let actual = logits[(r * vocab)..<((r + 1) * vocab)]
            XCTAssertLessThanOrEqual(rowRelativeError(actual, expected[...]), Self.tolerance, "row \(r)")
        }
        // Every row: max, argmax and log-sum-exp.
        let rowMax = try Golden.floats(window["row_max"])
        let rowLSE = try Golden.floats(window["row_logsumexp"])
        let argmax = try Golden.ints(window["row_argmax"])
        for r in 0..<tokens.count {
            let row = Array(logits[(r * vocab)..<((r + 1) * vocab)])
            let m = row.max()!
            XCTAssertEqual(m, rowMax[r], accuracy: Self.tolerance * max(1, abs(rowMax[r])), "max of row \(r)")
            let lse = row.withUnsafeBufferPointer { b in
                Double(m) + Foundation.log(b.reduce(0.0) { $0 + Foundation.exp(Double($1 - m)) })
            }
            XCTAssertEqual(lse, Double(rowLSE[r]), accuracy: 1e-4 * max(1, abs(Double(rowLSE[r]))), "logsumexp of row \(r)")
            // Argmax may only differ where the top two logits are within the tolerance.
            let a = Sampler.argmax(row)
            if a != argmax[r] {
                XCTAssertEqual(row[a], row[argmax[r]], accuracy: 2 * Self.tolerance * max(1, abs(m)), "argmax of row \(r)")
            }
        }

        // NLL per position and its mean.
        let expectedNLL = try Golden.floats(window["nll"])
        let nll = try model.negativeLogLikelihoods(hidden: hidden, targets: Array(tokens.dropFirst()))
        XCTAssertEqual(nll.count, tokens.count - 1)
        for (t, (a, e)) in zip(nll, expectedNLL).enumerated() {
            XCTAssertEqual(a, Double(e), accuracy: 1e-4 * max(1, Double(e)), "NLL at \(t)")
        }
        let mean = nll.reduce(0, +) / Double(nll.count)
        let expectedMean = try XCTUnwrap(window["mean_nll"]?.double)
        XCTAssertEqual(mean, expectedMean, accuracy: 5e-4 * expectedMean)
    }

    func testCapturedLayerInputsMatchTransformersHooks() throws {
        let (model, golden) = try fixture()
        let tokens = try Golden.ints(golden["window"]?["tokens"])
        let captures = try XCTUnwrap(golden["captures"]?.object)
        var hidden = try model.embed(tokens)
        let names: [LinearInput: String] = [.attention: "q_proj", .attentionOutput: "o_proj", .mlp: "gate_proj", .mlpHidden: "down_proj"]
        for layer in 0..<model.config.numHiddenLayers {
            var seen: [LinearInput: [Float]] = [:]
            var order: [LinearInput] = []
            model.runLayer(layer, hidden: &hidden) { captured in
                XCTAssertEqual(captured.layer, layer)
                XCTAssertEqual(captured.rows, tokens.count)
                XCTAssertEqual(captured.values.count, captured.rows * captured.cols)
                order.append(captured.input)
                seen[captured.input] = Array(captured.values)
            }
            XCTAssertEqual(order, LinearInput.allCases, "capture order in layer \(layer)")
            for (input, name) in names {
                guard let expected = captures["\(layer).\(name)"]?.object else { continue }
                let cols = try XCTUnwrap(expected["cols"]?.int)
                let actual = try XCTUnwrap(seen[input])
                XCTAssertEqual(actual.count, tokens.count * Int(cols), "\(layer).\(name) shape")
                for (key, value) in try XCTUnwrap(expected["rows"]?.object).pairs {
                    let r = try XCTUnwrap(Int(key))
                    let ref = try Golden.floats(value)
                    let got = actual[(r * Int(cols))..<((r + 1) * Int(cols))]
                    XCTAssertLessThanOrEqual(rowRelativeError(got, ref[...]), Self.tolerance, "\(layer).\(name) row \(r)")
                }
            }
        }
        XCTAssertEqual(captures.keys.count, 8, "the golden holds layers 1 and 4")
    }

    func testGreedyGenerationReproducesTransformers() throws {
        let (model, golden) = try fixture()
        let greedy = try XCTUnwrap(golden["greedy"])
        let prompt = try Golden.ints(greedy["prompt"])
        let expected = try Golden.ints(greedy["generated"])
        XCTAssertEqual(prompt.first, model.config.bosTokenID)
        let session = try InferenceSession(model: model, capacity: 128)
        var sampler = Sampler.greedy
        let generated = try session.generate(prompt: prompt, maxNewTokens: expected.count, sampler: &sampler)
        XCTAssertEqual(generated, expected)
        XCTAssertEqual(session.position, prompt.count + expected.count - 1, "the last token is sampled, not fed back")
        XCTAssertTrue(greedy["text"]?.string?.hasSuffix("One day, she saw a big, red ball.") == true)
    }

    func testRotaryFrequenciesMatchTransformers() throws {
        let (model, golden) = try fixture()
        let expected = try Golden.floats(golden["inv_freq"])
        XCTAssertEqual(model.rotary.inverseFrequencies, expected)
    }
}
