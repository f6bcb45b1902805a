import Foundation
import SlimIO
import SlimModel
import SlimRuntime
import XCTest

/// Inverse frequencies (default and Llama 3 scaling) and cos/sin tables against transformers.
final class RotaryEmbeddingTests: XCTestCase {
    func testFrequenciesAndTablesMatchTransformers() throws {
        let golden = try Golden.load("rope.json.gz")
        let cases = try XCTUnwrap(golden["cases"]?.array)
        XCTAssertEqual(cases.count, 4)
        for c in cases {
            let name = try XCTUnwrap(c["name"]?.string)
            let headDim = Int(try XCTUnwrap(c["head_dim"]?.int))
            let theta = try XCTUnwrap(c["rope_theta"]?.double)
            var scaling: LlamaConfig.RopeScaling?
            if let s = c["rope_scaling"]?.object {
                scaling = .llama3(factor: try XCTUnwrap(s["factor"]?.double),
                                  lowFreqFactor: try XCTUnwrap(s["low_freq_factor"]?.double),
                                  highFreqFactor: try XCTUnwrap(s["high_freq_factor"]?.double),
                                  originalMaxPositionEmbeddings: Int(try XCTUnwrap(s["original_max_position_embeddings"]?.int)))
            }
            let rope = RotaryEmbedding(headDim: headDim, theta: theta, scaling: scaling)
            let expected = try Golden.floats(c["inv_freq"])
            // Bit-exact except where torch's vectorised powf rounds differently (≤ 1 ulp).
            for (i, (a, e)) in zip(rope.inverseFrequencies, expected).enumerated() {
                XCTAssertLessThanOrEqual(abs(a - e), e.ulp, "\(name) inv_freq[\(i)]")
            }
            let positions = try Golden.ints(c["positions"])
            let cos = try Golden.floats(c["cos"]), sin = try Golden.floats(c["sin"])
            let half = headDim / 2
            for (j, p) in positions.enumerated() where p < 10_000 {
                let (pc, ps) = rope.cosSin(position: p)
                for i in 0..<half {
                    // The angle is rounded to Float first, so only cos/sin rounding differs.
                    XCTAssertEqual(pc[i], cos[j * half + i], accuracy: 2e-7, "\(name) cos p=\(p) i=\(i)")
                    XCTAssertEqual(ps[i], sin[j * half + i], accuracy: 2e-7, "\(name) sin p=\(p) i=\(i)")
                }
            }
        }
    }

    func testLlama3ScalingKeepsHighAndDividesLowFrequencies() {
        let plain = RotaryEmbedding(headDim: 128, theta: 500_000, scaling: nil).inverseFrequencies
        let scaled = RotaryEmbedding(headDim: 128, theta: 500_000,
                                     scaling: .llama3(factor: 8, lowFreqFactor: 1, highFreqFactor: 4,
                                                      originalMaxPositionEmbeddings: 8192)).inverseFrequencies
        XCTAssertEqual(scaled[0], plain[0], "wavelength 2π < 2048: unchanged")
        XCTAssertEqual(scaled[63], plain[63] / 8, "wavelength > 8192: divided by the factor")
        for i in 0..<64 {
            XCTAssertLessThanOrEqual(scaled[i], plain[i])
            XCTAssertGreaterThanOrEqual(scaled[i], plain[i] / 8 * (1 - 1e-6))
        }
    }
}
