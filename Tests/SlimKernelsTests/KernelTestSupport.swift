import Foundation
@testable import SlimKernels

/// Deterministic SplitMix64 so failures reproduce exactly.
struct SplitMix64 {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    mutating func nextFloat() -> Float {
        Float(Int64(bitPattern: next()) >> 40) / Float(1 << 23)
    }

    /// `count` uniform values in [-1, 1).
    mutating func floats(_ count: Int) -> [Float] { (0..<count).map { _ in nextFloat() } }
}

/// The rounding-error check used for every product: element (i, j) passes when
/// |fast − exact| ≤ factor·(k + 2)·ε·(magnitude + |initial|), where `exact` and `magnitude`
/// (Σ|a·b|) come from the Double reference and `initial` is C before an accumulating call.
/// This is the classic worst-case bound for a length-k Float dot product (plus the final
/// addition into C); NaN never passes. Returns nil on success, else a description of the worst
/// element.
func checkAgainstExact(_ fast: [Float], exact: [Double], magnitude: [Double], initial: [Double]? = nil,
                       k: Int, factor: Double = 1, label: String) -> String? {
    precondition(fast.count == exact.count && exact.count == magnitude.count)
    let epsilon = Double(Float.ulpOfOne)
    var worst: (index: Int, ratio: Double)? = nil
    for index in 0..<fast.count {
        let value = Double(fast[index])
        if value.isNaN || exact[index].isNaN {
            return "\(label): NaN at \(index) (fast \(fast[index]), exact \(exact[index]))"
        }
        let scale = magnitude[index] + abs(initial?[index] ?? 0)
        let bound = factor * Double(k + 2) * epsilon * scale
        let error = abs(value - exact[index])
        if error > bound {
            let ratio = scale > 0 ? error / (Double(k + 2) * epsilon * scale) : .infinity
            if worst == nil || ratio > worst!.ratio { worst = (index, ratio) }
        }
    }
    if let worst {
        return "\(label): element \(worst.index) = \(fast[worst.index]), exact \(exact[worst.index]), "
            + "error \(String(format: "%.3g", worst.ratio))·(k+2)·ε·Σ|ab| exceeds the bound"
    }
    return nil
}

/// Distance in units in the last place between two finite Floats of the same sign (or zero).
func ulpDistance(_ a: Float, _ b: Float) -> Int {
    if a == b { return 0 }
    func ordered(_ x: Float) -> Int64 {
        let bits = Int64(x.bitPattern)
        return x.sign == .minus ? -(bits & 0x7FFF_FFFF) : bits
    }
    return Int(abs(ordered(a) - ordered(b)))
}

/// Equality that treats any two NaNs as equal and otherwise compares bit patterns.
func sameBitsOrBothNaN(_ a: Float, _ b: Float) -> Bool {
    (a.isNaN && b.isNaN) || a.bitPattern == b.bitPattern
}

/// Blocking with tiny blocks and no threading threshold: every loop boundary of the GEMM driver
/// (several k-, row- and column-blocks, partial micro-tiles) is hit on matrices of a few dozen.
let tinyBlocking = GemmBlocking(kcMax: 5, mcMax: 12, packedBFloats: 5 * 32, minimumFlopsPerWorker: 1)
