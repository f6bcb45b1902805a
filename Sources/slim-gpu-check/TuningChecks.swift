import Foundation
import SlimCUDA
import SlimRuntime
import SlimPacking

/// The tuning knobs, read when a context is created: SLIM_CUDA_WARPS (decode GEMV warps per
/// block, 0 = automatic), SLIM_CUDA_DEPTH (slabs of code words in flight per warp: 2, 4 or 8,
/// 0 = automatic) and SLIM_CUDA_ATTN_SPLITS (attention key splits of grids smaller than the GPU,
/// 1…128, 0 = automatic). Each GEMV setting selects another kernel instantiation (4- or 8-word
/// slab buffers, 2–8 slabs deep), so every one is checked against the reference like the default,
/// and the sweep times them all so that one GPU run shows which the automatic choice should make.
enum TuningChecks {
    static let depths = [0, 2, 4, 8]
    static let warps = [0, 1, 2, 4, 8]

    /// A context created with the given knobs (0 = automatic), the environment restored after.
    static func context(libraryPath: String?, warps: Int, depth: Int) throws -> CUDAContext {
        try context(libraryPath: libraryPath, ["SLIM_CUDA_WARPS": warps, "SLIM_CUDA_DEPTH": depth])
    }

    /// A context created with the environment variables `knobs` set, unset again after.
    static func context(libraryPath: String?, _ knobs: [String: Int]) throws -> CUDAContext {
        for (name, value) in knobs { setenv(name, String(value), 1) }
        defer { for name in knobs.keys { unsetenv(name) } }
        return try CUDAContext(libraryPath: libraryPath)
    }

    /// Creating a context with `name`=`value` must fail with an error naming the setting.
    static func checkRefused(_ name: String, _ value: Int, libraryPath: String?, report: Report) {
        let label = "\(name)=\(value) refused"
        report.run(label) {
            do {
                _ = try context(libraryPath: libraryPath, [name: value])
                report.fail(label, "a context was created")
            } catch {
                if "\(error)".contains("\(name)=\(value)") { report.pass(label, "\(error)") }
                else { report.fail(label, "refused with '\(error)'") }
            }
        }
    }

    /// Decode (T ≤ 4) through every depth with automatic and single-warp blocks: ≤ 4-bit matrices
    /// (4-word buffers) and ones with 5–8-bit groups (8-word buffers), unit counts below, at and
    /// above the depth; an unsupported depth is refused with a line naming the variable.
    static func run(libraryPath: String?, report: Report) {
        let cases: [(rows: Int, columns: Int, groupSize: Int, bits: [UInt8])] = [
            (37, 300, 100, [3, 4, 2]),
            (300, 1024, 128, [1, 2, 3, 4, 2, 3, 1, 2]),
            (64, 576, 128, [3, 2, 1, 2, 2]),
            (45, 200, 192, [2, 5]),
            (37, 80, 16, [8, 1, 4, 3, 2]),
        ]
        for depth in depths.dropFirst() {
            for warps in [0, 1] {
                report.run("decode depth \(depth) warps \(warps)") {
                    let checks = LinearChecks(context: try context(libraryPath: libraryPath, warps: warps, depth: depth),
                                              report: report, quick: true)
                    for (i, c) in cases.enumerated() {
                        let packed = try randomPacked(rows: c.rows, columns: c.columns, groupSize: c.groupSize, bits: c.bits,
                                                      seed: UInt64(100 + i))
                        for tokens in [1, 4] {
                            let label = "packed \(c.rows)x\(c.columns) G\(c.groupSize) bits \(c.bits) T\(tokens) "
                                + "depth \(depth) warps \(warps)"
                            try checks.checkPacked(packed, tokens: tokens, label: label, seed: UInt64(i))
                        }
                    }
                }
            }
        }
        // Attention's key splits: none, a few (uneven chunks), and more than the tiles of some cases.
        for splits in [1, 3, 64] {
            report.run("attention SLIM_CUDA_ATTN_SPLITS=\(splits)") {
                let context = try context(libraryPath: libraryPath, ["SLIM_CUDA_ATTN_SPLITS": splits])
                let checks = OpChecks(context: context, report: report)
                for kvCache in KVCacheType.allCases {
                    checks.attention(cases: OpChecks.attentionCases.filter { $0.3 <= 4 }, kvCache: kvCache,
                                     suffix: " splits \(splits)")
                }
            }
        }
        checkRefused("SLIM_CUDA_ATTN_SPLITS", 129, libraryPath: libraryPath, report: report)
        checkRefused("SLIM_CUDA_DEPTH", 3, libraryPath: libraryPath, report: report)
    }

    /// The decode GEMV's cold kernel time for every (depth, warps) setting at the LLaMA-7B shapes,
    /// and the fastest per shape next to the automatic one. `quick`: small shapes and few
    /// launches (runs the path on the emulator).
    static func sweep(libraryPath: String?, report: Report, quick: Bool) {
        report.run("decode sweep") {
            print("SWEEP decode GEMV, cold kernel µs: rows SLIM_CUDA_DEPTH, columns SLIM_CUDA_WARPS")
            let sizes = quick ? [(64, 256), (40, 512)] : SpeedChecks.shapes
            let cases = [2, 3].flatMap { bits in sizes.map { (rows: $0.0, columns: $0.1, bits: bits) } }
            let layouts = cases.map { SpeedChecks.layout(rows: $0.rows, columns: $0.columns, bits: $0.bits) }
            // times[case][depth index][warps index]
            var times = [[[Double]]](repeating: [[Double]](repeating: [], count: depths.count), count: cases.count)
            for (di, depth) in depths.enumerated() {
                for w in warps {
                    let context = try context(libraryPath: libraryPath, warps: w, depth: depth)
                    for (i, layout) in layouts.enumerated() {
                        let linear = try CUDALinear.packed(layout, context: context)
                        let t = try linear.time(tokens: 1, iterations: quick ? 2 : 100,
                                                footprint: quick ? 2 * linear.weightBytes : linear.coldFootprint).kernel
                        times[i][di].append(t * 1e6)
                    }
                }
            }
            print("SWEEP shape        bits depth" + warps.map { setting($0).leftPadded(8) }.joined())
            for (i, c) in cases.enumerated() {
                let shape = "\(c.rows)x\(c.columns)".padding(toLength: 12, withPad: " ", startingAt: 0)
                for (di, depth) in depths.enumerated() {
                    print("SWEEP " + shape + String(format: " %4d ", c.bits) + setting(depth).leftPadded(5) + " "
                          + times[i][di].map { String(format: "%8.2f", $0) }.joined())
                }
                var best = (time: Double.infinity, depth: 0, warps: 0)
                for (di, depth) in depths.enumerated() {
                    for (wi, w) in warps.enumerated() where times[i][di][wi] < best.time { best = (times[i][di][wi], depth, w) }
                }
                print("SWEEP " + shape + String(format: " %4d best: depth %@ warps %@ %.2f µs; automatic %.2f µs (%.0f%% slower)",
                                                c.bits, setting(best.depth), setting(best.warps), best.time, times[i][0][0],
                                                100 * (times[i][0][0] / best.time - 1)))
            }
            let complete = times.allSatisfy { $0.allSatisfy { $0.count == warps.count && $0.allSatisfy { $0.isFinite && $0 > 0 } } }
            if complete { report.pass("decode sweep", "\(cases.count) shapes × \(depths.count * warps.count) settings timed") }
            else { report.fail("decode sweep", "a setting gave no positive finite time") }
        }
    }

    private static func setting(_ value: Int) -> String { value == 0 ? "auto" : String(value) }
}

private extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: " ", count: max(0, width - count)) + self }
}
