import Foundation
import SlimRuntime
import XCTest

final class SamplerTests: XCTestCase {
    func testGreedyTakesTheFirstMaximumAndIgnoresNaN() {
        XCTAssertEqual(Sampler.argmax([0, 3, 1, 3]), 1)
        XCTAssertEqual(Sampler.argmax([.nan, -1, .nan]), 1)
        XCTAssertEqual(Sampler.argmax([-.infinity, -.infinity]), 0)
        XCTAssertEqual(Sampler.argmax([]), -1)
        var s = Sampler.greedy
        XCTAssertEqual(s.sample([0.1, 5, -2, 5]), 1)
    }

    func testSeededSamplingIsDeterministic() throws {
        let logits: [Float] = (0..<50).map { Float($0 % 7) * 0.3 }
        func draw(_ seed: UInt64) throws -> [Int] {
            var s = try Sampler(temperature: 0.8, seed: seed)
            return (0..<64).map { _ in s.sample(logits) }
        }
        XCTAssertEqual(try draw(42), try draw(42))
        XCTAssertNotEqual(try draw(42), try draw(43))
    }

    func testTemperatureOneFollowsTheSoftmax() throws {
        let probs: [Double] = [0.5, 0.3, 0.2]
        let logits = probs.map { Float(Foundation.log($0)) }
        var s = try Sampler(temperature: 1, seed: 7)
        var counts = [0, 0, 0]
        let n = 20_000
        for _ in 0..<n { counts[s.sample(logits)] += 1 }
        for i in 0..<3 {
            XCTAssertEqual(Double(counts[i]) / Double(n), probs[i], accuracy: 0.015, "token \(i)")
        }
    }

    func testTopKAndTopPRestrictTheCandidates() throws {
        let logits = [0.5, 0.3, 0.2].map { Float(Foundation.log($0)) }
        var k2 = try Sampler(temperature: 1, topK: 2, seed: 1)
        var p07 = try Sampler(temperature: 1, topP: 0.7, seed: 2)
        var p05 = try Sampler(temperature: 1, topP: 0.5, seed: 3)
        var k1 = try Sampler(temperature: 5, topK: 1, seed: 4)
        var seenK2 = Set<Int>(), seenP07 = Set<Int>(), seenP05 = Set<Int>(), seenK1 = Set<Int>()
        for _ in 0..<2000 {
            seenK2.insert(k2.sample(logits))
            seenP07.insert(p07.sample(logits))
            seenP05.insert(p05.sample(logits))
            seenK1.insert(k1.sample(logits))
        }
        XCTAssertEqual(seenK2, [0, 1])
        XCTAssertEqual(seenP07, [0, 1], "0.5 < 0.7 ≤ 0.5 + 0.3: two tokens kept")
        XCTAssertEqual(seenP05, [0], "the top token alone reaches 0.5")
        XCTAssertEqual(seenK1, [0])
    }

    func testInvalidParametersAreRejected() {
        XCTAssertThrowsError(try Sampler(temperature: -1)) { XCTAssertEqual("\($0)", "temperature must be a finite number ≥ 0, got -1.0") }
        XCTAssertThrowsError(try Sampler(temperature: .nan))
        XCTAssertThrowsError(try Sampler(temperature: 1, topK: -2)) { XCTAssertEqual("\($0)", "top-k must be ≥ 0, got -2") }
        XCTAssertThrowsError(try Sampler(temperature: 1, topP: 0)) { XCTAssertEqual("\($0)", "top-p must be a positive number, got 0.0") }
        XCTAssertNoThrow(try Sampler(temperature: 1, topK: 0, topP: 1.5))
    }
}
