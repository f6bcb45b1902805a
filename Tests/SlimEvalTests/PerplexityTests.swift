import Foundation
import XCTest
@testable import SlimEval

/// A model whose logits at a position depend only on the input token there: row = table[token].
private struct TableModel: LogitsModel {
    let vocabularySize: Int
    let table: [[Float]]
    var seen: ((_ tokens: [Int]) -> Void)?
    func logits(tokens: [Int]) throws -> [Float] {
        seen?(tokens)
        return tokens.flatMap { table[$0] }
    }
}

final class PerplexityTests: XCTestCase {
    func testUniformLogitsGiveVocabularySize() throws {
        let model = TableModel(vocabularySize: 37, table: Array(repeating: Array(repeating: 0.25, count: 37), count: 37))
        let tokens = (0..<1000).map { $0 % 37 }
        for p in PerplexityProtocol.allCases {
            let r = try PerplexityEvaluator(protocol: p, contextLength: 64, bosTokenID: 1).evaluate(tokens: tokens, model: model)
            XCTAssertEqual(r.perplexity, 37, accuracy: 1e-9, "\(p)")
        }
    }

    /// Independent float64 computation of both protocols on a random table model.
    func testBothProtocolsMatchDirectComputation() throws {
        var rng = SystemRandomNumberGenerator()
        let v = 11
        let table = (0..<v).map { _ in (0..<v).map { _ in Float.random(in: -4...4, using: &rng) } }
        var windowsSeen: [[Int]] = []
        var model = TableModel(vocabularySize: v, table: table)
        model.seen = { windowsSeen.append($0) }
        let tokens = (0..<530).map { _ in Int.random(in: 0..<v, using: &rng) }
        func nll(_ input: Int, _ target: Int) -> Double {
            let row = table[input].map(Double.init)
            let m = row.max()!
            return log(row.reduce(0) { $0 + exp($1 - m) }) + m - row[target]
        }
        // Paper: 530 / 128 = 4 windows, 127 positions each, mean of window means.
        let paper = try PerplexityEvaluator(protocol: .paper, contextLength: 128).evaluate(tokens: tokens, model: model)
        var means: [Double] = []
        for w in 0..<4 {
            let base = w * 128
            means.append((0..<127).map { nll(tokens[base + $0], tokens[base + $0 + 1]) }.reduce(0, +) / 127)
        }
        XCTAssertEqual(paper.windows, 4)
        XCTAssertEqual(paper.positionsScored, 4 * 127)
        XCTAssertEqual(paper.perplexity, exp(means.reduce(0, +) / 4), accuracy: 1e-9)
        XCTAssertNil(paper.uncertainty)
        XCTAssertEqual(windowsSeen.count, 4)
        XCTAssertEqual(windowsSeen[1], Array(tokens[128..<256]), "paper windows are not modified")

        // llama.cpp: 4 windows, first token -> BOS (id 3), positions 64..126 scored.
        windowsSeen = []
        let lc = try PerplexityEvaluator(protocol: .llamacpp, contextLength: 128, bosTokenID: 3).evaluate(tokens: tokens, model: model)
        var all: [Double] = []
        for w in 0..<4 {
            let base = w * 128
            all += (64..<127).map { nll(tokens[base + $0], tokens[base + $0 + 1]) }
        }
        let mean = all.reduce(0, +) / Double(all.count)
        let sd = ((all.reduce(0) { $0 + $1 * $1 } / Double(all.count) - mean * mean) / Double(all.count - 1)).squareRoot()
        XCTAssertEqual(lc.positionsScored, 4 * 63)
        XCTAssertEqual(lc.perplexity, exp(mean), accuracy: 1e-9)
        XCTAssertEqual(lc.uncertainty!, sd * exp(mean), accuracy: 1e-9)
        XCTAssertEqual(windowsSeen[2][0], 3)
        XCTAssertEqual(Array(windowsSeen[2][1...]), Array(tokens[257..<384]))
    }

    func testTooFewTokensAndMaxWindows() throws {
        let model = TableModel(vocabularySize: 4, table: Array(repeating: [0, 0, 0, 0], count: 4))
        let tokens = Array(repeating: 1, count: 200)
        XCTAssertThrowsError(try PerplexityEvaluator(protocol: .llamacpp, contextLength: 128).evaluate(tokens: tokens, model: model)) {
            XCTAssertTrue(($0 as! PerplexityError).message.contains("needs at least 256"))
        }
        XCTAssertThrowsError(try PerplexityEvaluator(protocol: .paper, contextLength: 256).evaluate(tokens: tokens, model: model))
        let r = try PerplexityEvaluator(protocol: .paper, contextLength: 50, maxWindows: 2).evaluate(tokens: tokens, model: model)
        XCTAssertEqual(r.windows, 2)
    }

    func testNonFiniteLogitsAreAnError() {
        var row: [Float] = [0, 1, 2, 3]
        row[2] = .nan
        let model = TableModel(vocabularySize: 4, table: [row, row, row, row])
        XCTAssertThrowsError(try PerplexityEvaluator(protocol: .paper, contextLength: 8).evaluate(tokens: Array(repeating: 0, count: 16), model: model))
        let inf = TableModel(vocabularySize: 4, table: Array(repeating: [0, .infinity, 0, 0], count: 4))
        XCTAssertThrowsError(try PerplexityEvaluator(protocol: .paper, contextLength: 8).evaluate(tokens: Array(repeating: 0, count: 16), model: inf))
    }
}
