import Foundation
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest

/// The quantizer's layer-by-layer API: captured inputs are what the projections consume, and
/// running layers one by one is the whole forward pass.
final class LayerAPITests: XCTestCase {
    func testCapturesAreTheProjectionInputs() throws {
        let model = try openModel(try TestFixtures.shared("models/stories260K"))
        let c = model.config
        let tokens = Array(try Golden.ints(Golden.load("stories260K.json.gz")["window"]?["tokens"]).prefix(40))
        var hidden = try model.embed(tokens)
        XCTAssertEqual(hidden.rows, tokens.count)
        XCTAssertEqual(hidden.row(3), Array(model.weights.embedding.fp32!.buffer[(tokens[3] * c.hiddenSize)..<((tokens[3] + 1) * c.hiddenSize)]))
        model.runLayer(0, hidden: &hidden)

        let before = hidden
        let layer = model.weights.layers[1]
        var captured: [LinearInput: (rows: Int, cols: Int, values: [Float])] = [:]
        model.runLayer(1, hidden: &hidden) { captured[$0.input] = ($0.rows, $0.cols, Array($0.values)) }
        var uncaptured = before
        model.runLayer(1, hidden: &uncaptured)
        XCTAssertEqual(hidden, uncaptured, "capturing does not change the computation")

        // Shapes follow the consuming projections.
        for input in LinearInput.allCases {
            let got = try XCTUnwrap(captured[input])
            XCTAssertEqual(got.rows, tokens.count)
            for kind in input.consumers { XCTAssertEqual(got.cols, layer[kind].inFeatures, "\(input) → \(kind)") }
        }
        XCTAssertEqual(LinearInput.attention.consumers, [.qProj, .kProj, .vProj])
        XCTAssertEqual(LinearInput.mlp.consumers, [.gateProj, .upProj])

        // q/k/v input = RMSNorm(hidden before the layer), computed here in Double.
        let attn = try XCTUnwrap(captured[.attention])
        let w = Array(layer.inputNorm.buffer)
        for r in 0..<tokens.count {
            let x = before.row(r)
            let ms = x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(x.count)
            let inv = 1 / (ms + c.rmsNormEps).squareRoot()
            for i in 0..<x.count {
                XCTAssertEqual(attn.values[r * x.count + i], Float(Double(x[i]) * inv * Double(w[i])),
                               accuracy: 1e-5 * max(1, abs(attn.values[r * x.count + i])), "row \(r) [\(i)]")
            }
        }
        // down_proj input = silu(gate(x)) · up(x) with x the captured MLP input.
        let mlp = try XCTUnwrap(captured[.mlp]), act = try XCTUnwrap(captured[.mlpHidden])
        let gate = try XCTUnwrap(layer.denseWeight(.gateProj)), up = try XCTUnwrap(layer.denseWeight(.upProj))
        for r in [0, tokens.count - 1] {
            for j in 0..<c.intermediateSize {
                var g = 0.0, u = 0.0
                for i in 0..<c.hiddenSize {
                    let x = Double(mlp.values[r * c.hiddenSize + i])
                    g += x * Double(gate.pointer[j * c.hiddenSize + i])
                    u += x * Double(up.pointer[j * c.hiddenSize + i])
                }
                let expected = g / (1 + Foundation.exp(-g)) * u
                XCTAssertEqual(Double(act.values[r * c.intermediateSize + j]), expected, accuracy: 1e-5 * max(1, abs(expected)))
            }
        }
    }

    func testLayerByLayerEqualsForward() throws {
        let model = try openModel(try TestFixtures.shared("models/stories260K"), threads: 1)
        let tokens = Array(try Golden.ints(Golden.load("stories260K.json.gz")["window"]?["tokens"]).prefix(70))
        var hidden = try model.embed(tokens)
        for l in 0..<model.config.numHiddenLayers { model.runLayer(l, hidden: &hidden) }
        let full = try model.forward(tokens)
        XCTAssertEqual(model.logits(from: hidden), full)
        // One row goes through the GEMV kernel (another summation order): equal to rounding.
        assertRowsClose(model.logits(from: hidden, rows: .last), Array(full.suffix(model.config.vocabSize)),
                        width: model.config.vocabSize, tolerance: 1e-6, "last row")
        XCTAssertEqual(model.logits(from: hidden, rows: .none), [])
        // Thread count does not change a single bit (the kernels split work over outputs only).
        model.threads = 2
        XCTAssertEqual(try model.forward(tokens), full)
        let empty = try model.embed([])
        XCTAssertEqual(empty.rows, 0)
        XCTAssertEqual(model.logits(from: empty), [])
        XCTAssertEqual(try model.negativeLogLikelihoods([5]), [])
        XCTAssertThrowsError(try model.negativeLogLikelihoods(hidden: hidden, targets: [3, 512])) { error in
            XCTAssertEqual("\(error)", "target id 512 at position 1 is outside the vocabulary (0..<512)")
        }
        XCTAssertThrowsError(try model.negativeLogLikelihoods(hidden: hidden, targets: .init(repeating: 0, count: 71)))
    }
}
