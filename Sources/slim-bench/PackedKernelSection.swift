import Dispatch
import Foundation
import SlimKernels
import SlimPacking

/// Per-call speed of the packed GEMV at SmolLM2-135M and LLaMA-7B shapes (random SliM-like bit
/// mixes, mean N), next to the fp32 GEMV on the same shape in the same run: microseconds per
/// call, weights per second and bytes read per second; then the int8-activation kernel
/// (`gemvInt8`) on the same matrix, its speedup over the fp32-activation one, and its largest
/// error relative to Σ|ŵ·x| (from x's int8 rounding).
struct PackedKernelSection {
    let threads: Int
    let quick: Bool

    func run() {
        print("== packed GEMV kernel vs fp32 GEMV, \(threads) thread(s)")
        print(pad("shape", 14) + pad("bits", 6) + pad("packed µs", 11) + pad("Gw/s", 7) + pad("GB/s", 7)
              + pad("fp32 µs", 10) + pad("GB/s", 7) + pad("speedup", 9) + pad("int8 µs", 9) + pad("GB/s", 7)
              + pad("vs packed", 11) + "rel err")
        let shapes = quick ? [(576, 576), (1536, 576)] : [(576, 576), (192, 576), (1536, 576), (576, 1536), (4096, 4096), (11008, 4096)]
        for (rows, columns) in shapes {
            for n in [2, 3] {
                let matrix = Self.randomMatrix(rows: rows, columns: columns, bits: n, seed: UInt64(rows * 31 + columns + n))
                let x = (0..<columns).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
                var y = [Float](repeating: 0, count: rows)
                let packed = x.withUnsafeBufferPointer { xb in
                    y.withUnsafeMutableBufferPointer { yb in
                        time { matrix.gemv(x: xb.baseAddress!, y: yb.baseAddress!, threads: threads) }
                    }
                }
                let dense = [Float](repeating: 0.01, count: rows * columns)
                let fp = dense.withUnsafeBufferPointer { w in
                    x.withUnsafeBufferPointer { xb in
                        y.withUnsafeMutableBufferPointer { yb in
                            time { Kernels.gemv(m: rows, k: columns, a: w.baseAddress!, lda: columns, x: xb.baseAddress!,
                                                y: yb.baseAddress!, threads: threads) }
                        }
                    }
                }
                let int8 = x.withUnsafeBufferPointer { xb in
                    y.withUnsafeMutableBufferPointer { yb in
                        time { matrix.gemvInt8(x: xb.baseAddress!, y: yb.baseAddress!, threads: threads) }
                    }
                }
                let error = Self.int8Error(matrix, x: x, threads: threads)
                let weights = Double(rows * columns)
                print(pad("\(rows)×\(columns)", 14) + pad("\(n)", 6) + pad(String(format: "%.1f", packed * 1e6), 11)
                      + pad(String(format: "%.1f", weights / packed / 1e9), 7)
                      + pad(String(format: "%.1f", Double(matrix.residentBytes) / packed / 1e9), 7)
                      + pad(String(format: "%.1f", fp * 1e6), 10)
                      + pad(String(format: "%.1f", weights * 4 / fp / 1e9), 7) + pad(String(format: "%.2f×", fp / packed), 9)
                      + pad(String(format: "%.1f", int8 * 1e6), 9)
                      + pad(String(format: "%.1f", Double(matrix.residentBytes) / int8 / 1e9), 7)
                      + pad(String(format: "%.2f×", packed / int8), 11) + String(format: "%.1e", error))
            }
        }
        print()
    }

    private func time(_ body: () -> Void) -> Double { bestSecondsPerCall(quick: quick, body) }

    /// max over rows of |int8 result − fp32-activation result| / Σ_c |ŵ_rc·x_c| (the fp32 kernel
    /// is within a few ulps of the exact product, so this is x's rounding).
    static func int8Error(_ matrix: PackedMatrix, x: [Float], threads: Int) -> Double {
        var exact = [Float](repeating: 0, count: matrix.rows), int8 = exact
        var row = [Float](repeating: 0, count: matrix.columns)
        x.withUnsafeBufferPointer { xb in
            exact.withUnsafeMutableBufferPointer { matrix.gemv(x: xb.baseAddress!, y: $0.baseAddress!, threads: threads) }
            int8.withUnsafeMutableBufferPointer { matrix.gemvInt8(x: xb.baseAddress!, y: $0.baseAddress!, threads: threads) }
        }
        var worst = 0.0
        for r in stride(from: 0, to: matrix.rows, by: max(1, matrix.rows / 64)) {
            row.withUnsafeMutableBufferPointer { matrix.dequantizeRowScalar(r, into: $0.baseAddress!) }
            let magnitude = zip(row, x).reduce(0.0) { $0 + abs(Double($1.0) * Double($1.1)) }
            worst = max(worst, abs(Double(int8[r]) - Double(exact[r])) / max(magnitude, 1e-30))
        }
        return worst
    }

    /// A packed matrix with a quarter of the groups at N−1, a quarter at N+1 (mean N).
    static func randomMatrix(rows: Int, columns: Int, bits n: Int, seed: UInt64) -> PackedMatrix {
        var state = seed
        func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return state >> 33
        }
        let k = (columns + 127) / 128
        var bits = [UInt8](repeating: UInt8(n), count: k)
        for g in 0..<(k / 4) { bits[g] = UInt8(n - 1); bits[k - 1 - g] = UInt8(n + 1) }
        var scales = [Float](), zeros = [Float]()
        var codes = [UInt8](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for g in 0..<k {
                let b = Int(bits[g])
                scales.append(Kernels.Reference.f16ToF32(Kernels.Reference.f32ToF16(0.01)))
                zeros.append(b == 1 ? 0 : Float(1 << (b - 1)))
                for c in (g * 128)..<min(columns, (g + 1) * 128) {
                    codes[r * columns + c] = b == 1 ? (next() & 1 == 0 ? 1 : 3) : UInt8(next() % UInt64(1 << b))
                }
            }
        }
        do {
            return PackedMatrix(try PackedLinear(rows: rows, columns: columns, groupSize: 128, bits: bits, scales: scales,
                                                 zeros: zeros, codes: codes))
        } catch {
            preconditionFailure("random packed matrix: \(error)")
        }
    }
}

/// Best seconds per call of `body` over enough calls to take ~50 ms per round, 5 rounds (3 when
/// `quick`), after one warm-up call. Shared by the per-call kernel sections.
func bestSecondsPerCall(quick: Bool, _ body: () -> Void) -> Double {
    body()
    let start = DispatchTime.now().uptimeNanoseconds
    body()
    let once = max(1e-7, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    let calls = max(1, Int(0.05 / once))
    var best = Double.infinity
    for _ in 0..<(quick ? 3 : 5) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<calls { body() }
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 / Double(calls))
    }
    return best
}
