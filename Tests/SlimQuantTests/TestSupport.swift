// Deterministic random data and small dense helpers for the SlimQuant tests.

import Foundation
import SlimTestSupport
import XCTest

/// SplitMix64: a tiny deterministic generator for test data.
struct TestRandom {
    private var state: UInt64
    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// Standard normal (Box–Muller).
    mutating func normal() -> Double {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    mutating func normals(_ count: Int, scale: Double = 1) -> [Float] {
        (0..<count).map { _ in Float(normal() * scale) }
    }
}

/// Calibration-like activations: `samples` matrices of `tokens × columns`, with log-normal
/// per-column scales (real activations have outlier channels).
/// `channelSpread` 0 gives i.i.d. standard normal entries.
func makeActivations(samples: Int, tokens: Int, columns: Int, seed: UInt64, channelSpread: Double = 1) -> [[Float]] {
    var rng = TestRandom(seed: seed)
    let channelScale = (0..<columns).map { _ in Foundation.exp(rng.normal() * channelSpread) }
    return (0..<samples).map { _ in
        var x = [Float](repeating: 0, count: tokens * columns)
        for t in 0..<tokens { for c in 0..<columns { x[t * columns + c] = Float(rng.normal() * channelScale[c]) } }
        return x
    }
}

/// Row-major n×n product A·B in Double.
func matmul(_ a: [Double], _ b: [Double], _ n: Int) -> [Double] {
    var c = [Double](repeating: 0, count: n * n)
    for i in 0..<n { for k in 0..<n where a[i * n + k] != 0 { for j in 0..<n { c[i * n + j] += a[i * n + k] * b[k * n + j] } } }
    return c
}

func transpose(_ a: [Double], _ n: Int) -> [Double] {
    var t = a
    for i in 0..<n { for j in 0..<n { t[j * n + i] = a[i * n + j] } }
    return t
}

func maxAbsDifference(_ a: [Double], _ b: [Double]) -> Double {
    zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Reads a committed JSON fixture of this target with Foundation.
func loadFixtureJSON(_ name: String) throws -> Any {
    let bytes = try TestFixtures.committedBytes("SlimQuantTests", name)
    return try JSONSerialization.jsonObject(with: Data(bytes))
}

/// An integer from a JSON number (NSNumber) with a clear failure.
func jsonInt(_ value: Any?, _ what: String) throws -> Int {
    guard let number = value as? NSNumber else { throw FixtureError("\(what): expected a number, got \(String(describing: value))") }
    return number.intValue
}

func jsonInts(_ value: Any?, _ what: String) throws -> [Int] {
    guard let array = value as? [Any] else { throw FixtureError("\(what): expected an array") }
    return try array.map { try jsonInt($0, what) }
}
