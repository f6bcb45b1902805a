import Foundation
import SlimIO
import SlimModel
import SlimTestSupport
import XCTest
@testable import SlimPipeline

final class AllocationFileTests: XCTestCase {
    /// stories260K: 5 layers, hidden 64, intermediate 172 -> group 32 gives 2 groups (in 64) and 6 (in 172, last partial).
    func layout() throws -> TensorLayout {
        TensorLayout(config: try LlamaConfig(path: try TestFixtures.shared("models/stories260K/config.json")))
    }

    /// A SliM-style allocation: per module i groups at N-1 and i at N+1, the rest at N.
    func balanced(_ layout: TensorLayout, bits n: Int, group: Int) -> AllocationFile {
        var a = AllocationFile(model: "stories260K", method: "slim", bits: n, groupSize: group, seed: 0,
                              calibration: .init(file: "wiki.train.excerpt.txt", sha256: String(repeating: "a", count: 64), samples: 8, sequenceLength: 256),
                              toolVersion: "test", shapes: AllocationFile.shapes(of: layout))
        for l in 0..<layout.config.numHiddenLayers {
            var layer: [String: [Int]] = [:]
            for m in layout.linearModules(layer: l) {
                let k = (m.inFeatures + group - 1) / group
                var bits = Array(repeating: n, count: k)
                // Full groups only, so the column-weighted mean stays exactly n.
                let full = m.inFeatures / group
                let i = min(l % 2 + 1, full / 2)
                for j in 0..<i { bits[j] = n - 1; bits[full - 1 - j] = n + 1 }
                layer[AllocationFile.key(m.kind)] = bits
            }
            a.layers.append(layer)
        }
        return a
    }

    func testRoundTripValidateAndAverage() throws {
        let lay = try layout()
        let a = balanced(lay, bits: 2, group: 32)
        try a.validate(layout: lay, path: "mem")
        XCTAssertEqual(a.averageBits, 2, accuracy: 1e-12)
        let dir = try TestFixtures.temporaryDirectory(self)
        try a.write(to: dir + "/allocation.json")
        let b = try AllocationFile.load(path: dir + "/allocation.json")
        XCTAssertEqual(a, b)
        // Key order: known modules in LinearKind order.
        let text = try String(contentsOfFile: dir + "/allocation.json", encoding: .utf8)
        XCTAssertLessThan(text.range(of: "self_attn.q_proj")!.lowerBound, text.range(of: "mlp.down_proj")!.lowerBound)
        XCTAssertEqual(a.histogram.keys.sorted(), [1, 2, 3])
    }

    func testValidationNamesProblems() throws {
        let lay = try layout()
        var a = balanced(lay, bits: 3, group: 32)
        a.layers[1]["mlp.down_proj"] = [3, 3]
        a.layers[2]["self_attn.q_proj"] = [0, 9]
        a.layers[3]["mlp.fc9"] = [3]
        XCTAssertThrowsError(try a.validate(layout: lay, path: "alloc.json")) { e in
            let d = String(describing: e)
            XCTAssertTrue(d.hasPrefix("alloc.json: allocation does not fit the model"), d)
            XCTAssertTrue(d.contains("layer 1 mlp.down_proj: 2 groups, expected 6"), d)
            XCTAssertTrue(d.contains("outside 1...8"), d)
            XCTAssertTrue(d.contains("unknown module \"mlp.fc9\""), d)
        }
        a = balanced(lay, bits: 3, group: 32)
        a.layers.removeLast()
        XCTAssertThrowsError(try a.validate(layout: lay, path: "x"))
        a = balanced(lay, bits: 3, group: 32)
        a.shapes["mlp.down_proj"] = [64, 171]
        XCTAssertThrowsError(try a.validate(layout: lay, path: "x"))
    }

    func testMalformedFilesGiveClearErrors() throws {
        let cases: [(String, String)] = [
            ("{}", "not a slim-quant allocation file"),
            ("{\"format\":\"slim-quant-allocation\",\"version\":2}", "unsupported allocation version 2"),
            ("{\"format\":\"slim-quant-allocation\",\"version\":1,\"model\":\"m\",\"method\":\"slim\",\"bits\":\"2\"}", "\"bits\" must be an integer"),
            ("{\"format\":\"slim-quant-allocation\",\"version\":1,\"model\":\"m\",\"method\":\"slim\",\"bits\":2,\"group_size\":128,\"seed\":0,\"tool_version\":\"t\",\"shapes\":{},\"layers\":[{\"mlp.up_proj\":[2,\"x\"]}]}", "layers[0].mlp.up_proj must be an array of integers"),
            ("{\"format\":", "invalid JSON"),
        ]
        let dir = try TestFixtures.temporaryDirectory(self)
        for (i, (text, message)) in cases.enumerated() {
            let path = dir + "/a\(i).json"
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try AllocationFile.load(path: path)) { e in
                XCTAssertTrue(String(describing: e).contains(path), "\(e)")
                XCTAssertTrue(String(describing: e).contains(message), "\(e)")
            }
        }
    }

    func testSummaryAndSVG() throws {
        let lay = try layout()
        let a = balanced(lay, bits: 2, group: 32)
        let lines = a.summary()
        XCTAssertEqual(lines.count, 1 + 5 + 1)
        XCTAssertTrue(lines.last!.contains("2.0000 bits per weight"), lines.last!)
        XCTAssertTrue(lines[1].hasPrefix("layer   0"), lines[1])
        let svg = a.svg()
        XCTAssertTrue(svg.hasPrefix("<svg"))
        // One rect per group per module per layer, plus one legend swatch per bit width.
        let groupsPerLayer = lay.linearModules(layer: 0).reduce(0) { $0 + ($1.inFeatures + 31) / 32 }
        let rects = svg.components(separatedBy: "<rect").count - 1
        XCTAssertEqual(rects, 5 * groupsPerLayer + 3)
        XCTAssertTrue(svg.hasSuffix("</svg>\n"))
    }
}
