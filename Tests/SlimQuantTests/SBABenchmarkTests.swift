// SBA candidate evaluation: incremental vs straightforward on a realistic shape. Opt-in
// (SLIM_QUANT_BENCH=1) because it takes seconds; run it in release for the reported numbers:
//   SLIM_QUANT_BENCH=1 swift test -c release --filter SlimQuantTests.SBABenchmarkTests

import Foundation
import SlimQuant
import XCTest

final class SBABenchmarkTests: XCTestCase {
    func testIncrementalSpeedupOnSmolLM2MLPShape() throws {
        guard ProcessInfo.processInfo.environment["SLIM_QUANT_BENCH"] == "1" else {
            throw XCTSkip("set SLIM_QUANT_BENCH=1 to run the SBA benchmark (T=2048, C=1536, R=576, K=12)")
        }
        // down_proj of SmolLM2-135M: in 1536, out 576, group 128 → K = 12.
        let (tokens, columns, rows, g) = (2048, 1536, 576, 128)
        var rng = TestRandom(seed: 1)
        let w = rng.normals(rows * columns, scale: 0.05)
        let x = makeActivations(samples: 1, tokens: tokens, columns: columns, seed: 2)[0]
        let order = Array(0..<12).shuffled(using: &rng)
        for (label, compat) in [("clean i=0…6", ReferenceCompat()), ("reference i=1…5", ReferenceCompat.searchRange)] {
            var timings: [Double] = []
            var results: [SBAResult] = []
            for strategy in [SBAStrategy.incremental, .straightforward] {
                let s = try BitAllocationSearch(weight: w, rows: rows, columns: columns, groupOrder: order, targetBits: 2,
                                                groupSize: g, candidates: Salience.searchCandidates(groupCount: 12, compat: compat),
                                                compat: compat, strategy: strategy)
                // Warm-up sample, then the timed ones.
                try x.withUnsafeBufferPointer { try s.add(x: $0.baseAddress!, rows: tokens) }
                let samples = 3
                let start = Date()
                for _ in 0..<samples { try x.withUnsafeBufferPointer { try s.add(x: $0.baseAddress!, rows: tokens) } }
                timings.append(Date().timeIntervalSince(start) / Double(samples))
                results.append(try XCTUnwrap(s.result()))
            }
            XCTAssertEqual(results[0].best, results[1].best)
            for (a, b) in zip(results[0].klSums, results[1].klSums) { XCTAssertEqual(a, b, accuracy: 1e-4 * b) }
            print(String(format: "SBA %@ (%d candidates): incremental %.3f s/sample, straightforward %.3f s/sample, speedup %.2f×",
                         label, results[0].candidates.count, timings[0], timings[1], timings[1] / timings[0]))
        }
    }
}

extension TestRandom: RandomNumberGenerator {}
