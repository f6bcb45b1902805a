// SBA candidate evaluation: incremental vs straightforward on realistic shapes. Opt-in
// (SLIM_QUANT_BENCH=1) because it takes tens of seconds. Reported numbers come from a release
// build of this target:
//   SLIM_QUANT_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter SlimQuantTests.SBABenchmarkTests

import Foundation
import SlimQuant
import XCTest

final class SBABenchmarkTests: XCTestCase {
    private func measure(tokens: Int, columns: Int, rows: Int, groupSize: Int, samples: Int, label: String) throws {
        var rng = TestRandom(seed: 1)
        let w = rng.normals(rows * columns, scale: 0.05)
        let x = makeActivations(samples: 1, tokens: tokens, columns: columns, seed: 2)[0]
        let k = Salience.rankedGroupCount(columns: columns, groupSize: groupSize)
        let order = Array(0..<k).shuffled(using: &rng)
        for (range, compat) in [("clean", ReferenceCompat()), ("reference", ReferenceCompat.searchRange)] {
            var timings: [Double] = []
            var results: [SBAResult] = []
            for strategy in [SBAStrategy.incremental, .straightforward] {
                let s = try BitAllocationSearch(weight: w, rows: rows, columns: columns, groupOrder: order, targetBits: 2,
                                                groupSize: groupSize,
                                                candidates: Salience.searchCandidates(rankedGroups: k, compat: compat),
                                                compat: compat, strategy: strategy)
                let start = Date()
                for _ in 0..<samples { try x.withUnsafeBufferPointer { try s.add(x: $0.baseAddress!, rows: tokens) } }
                timings.append(Date().timeIntervalSince(start) / Double(samples))
                results.append(try XCTUnwrap(s.result()))
            }
            XCTAssertEqual(results[0].best, results[1].best)
            for (a, b) in zip(results[0].klSums, results[1].klSums) { XCTAssertEqual(a, b, accuracy: 1e-4 * b) }
            print(String(format: "SBA %@ T=%d C=%d R=%d K=%d, %@ range (%d candidates): incremental %.3f s/sample, "
                            + "straightforward %.3f s/sample, speedup %.2f×",
                         label, tokens, columns, rows, k, range, results[0].candidates.count, timings[0], timings[1],
                         timings[1] / timings[0]))
        }
    }

    func testIncrementalSpeedup() throws {
        guard ProcessInfo.processInfo.environment["SLIM_QUANT_BENCH"] == "1" else {
            throw XCTSkip("set SLIM_QUANT_BENCH=1 to run the SBA benchmark")
        }
        // SmolLM2-135M down_proj: in 1536, out 576, group 128 → K = 12.
        try measure(tokens: 2048, columns: 1536, rows: 576, groupSize: 128, samples: 3, label: "SmolLM2 down_proj")
        // LLaMA-7B-like input width (4096 → K = 32) with fewer outputs to keep the run short.
        try measure(tokens: 2048, columns: 4096, rows: 1024, groupSize: 128, samples: 1, label: "C=4096")
    }
}

extension TestRandom: RandomNumberGenerator {}
