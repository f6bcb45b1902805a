import Foundation
import SlimKernels

/// Prints one PASS/FAIL line per check and counts failures. Errors are measured against a
/// float64 reference, each element normalised by its own scale (e.g. Σ|w·x| for a dot product,
/// so cancellation does not inflate it); NaN, an unwritten (still poisoned) output, or a
/// modified guard element fails.
final class Report {
    private(set) var failures = 0
    private(set) var passes = 0

    /// Bit pattern the outputs are filled with before a kernel runs (a quiet NaN): an element
    /// still holding it was never written.
    static let poison: UInt32 = 0x7FC0_DEAD
    /// Extra elements after every output buffer, checked to still hold `poison`.
    static let guardCount = 64

    func pass(_ name: String, _ detail: String) {
        passes += 1
        print("PASS \(name): \(detail)")
        fflush(stdout)
    }

    func fail(_ name: String, _ detail: String) {
        failures += 1
        print("FAIL \(name): \(detail)")
        fflush(stdout)
    }

    /// Compares `got` (with `guardCount` trailing guard elements, when `guarded`) against `want`.
    /// - Parameters:
    ///   - scale: per-element normalisation (same count as `want`).
    ///   - describe: names element i for the first-mismatch message.
    func compare(_ name: String, got: [Float], want: [Double], scale: [Double], tolerance: Double,
                 guarded: Bool = true, describe: (Int) -> String = { "index \($0)" }) {
        precondition(got.count >= want.count && scale.count == want.count, "Report.compare: sizes")
        var worst = 0.0, worstIndex = 0
        var firstBad: Int?
        var unwritten = 0
        for i in want.indices {
            let g = got[i]
            if g.bitPattern == Report.poison { unwritten += 1 }
            let err = g.isNaN ? Double.infinity : abs(Double(g) - want[i]) / max(scale[i], 1e-30)
            if err > worst || err.isNaN {
                worst = err
                worstIndex = i
            }
            if firstBad == nil, !(err <= tolerance) { firstBad = i }
        }
        var guardsHit = 0
        if guarded {
            for i in want.count..<got.count where got[i].bitPattern != Report.poison { guardsHit += 1 }
        }
        let summary = String(format: "max err %.2e at %@ (tolerance %.0e)", worst, describe(worstIndex), tolerance)
        if let bad = firstBad {
            fail(name, summary + String(format: "; first mismatch at %@: got %.9g, want %.9g%@%@", describe(bad),
                                        Double(got[bad]), want[bad],
                                        unwritten > 0 ? ", \(unwritten) element(s) never written" : "",
                                        guardsHit > 0 ? ", \(guardsHit) guard element(s) overwritten" : ""))
        } else if guardsHit > 0 {
            fail(name, summary + "; \(guardsHit) guard element(s) after the output overwritten")
        } else {
            pass(name, summary)
        }
    }

    /// Runs `body`, turning a thrown error into a FAIL line (the device may be unusable after a
    /// fault; later checks then fail with the same message).
    func run(_ name: String, _ body: () throws -> Void) {
        do {
            try body()
        } catch {
            fail(name, "\(error)")
        }
    }
}

/// Reproducible test data from SlimKernels' SplitMix64.
struct Random {
    private var generator: SplitMix64
    init(seed: UInt64) { generator = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { generator.next() }
    /// Uniform in [0, 1).
    mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
    /// Uniform in [−1, 1).
    mutating func signed() -> Float { 2 * unit() - 1 }
    mutating func values(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in signed() * scale } }
}
