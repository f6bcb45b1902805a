import Foundation
import SlimKernels

/// The dense GEMV per call on a weight kept as F16 / BF16 (`--weights native`) next to the same
/// matrix widened to fp32, in the same run: µs per call, GB/s of weight bytes read, and the
/// speedup over fp32. SmolLM2-135M shapes (incl. its 49152×576 classifier) and LLaMA-7B shapes.
struct Dense16Section {
    let threads: Int
    let quick: Bool

    func run() {
        print("== dense GEMV: 16-bit weights as stored vs widened fp32, \(threads) thread(s)")
        print(pad("shape", 14) + pad("fp32 µs", 10) + pad("GB/s", 7) + pad("f16 µs", 10) + pad("GB/s", 7) + pad("vs fp32", 9)
              + pad("bf16 µs", 10) + pad("GB/s", 7) + "vs fp32")
        let shapes = quick ? [(576, 576), (49152, 576)]
                           : [(576, 576), (1536, 576), (576, 1536), (49152, 576), (4096, 4096), (11008, 4096), (32000, 4096)]
        for (rows, columns) in shapes {
            let count = rows * columns
            var values = [Float](repeating: 0, count: count)
            for i in 0..<count { values[i] = Float((i &* 7919) % 2001) / 1000 - 1 }
            var f16 = [UInt16](repeating: 0, count: count), bf16 = f16
            Kernels.convertF32ToF16(values, &f16, count: count)
            Kernels.convertF32ToBF16(values, &bf16, count: count)
            let x = (0..<columns).map { Float(($0 * 31) % 997) / 997 - 0.5 }
            var y = [Float](repeating: 0, count: rows)
            let fp = time {
                Kernels.gemv(m: rows, k: columns, a: values, lda: columns, x: x, y: &y, threads: threads)
            }
            func half(_ bits: [UInt16], _ format: StorageFormat) -> Double {
                bits.withUnsafeBytes { raw in
                    time { Kernels.gemv(m: rows, k: columns, a: raw.baseAddress!, format: format, lda: columns, x: x, y: &y, threads: threads) }
                }
            }
            let h = half(f16, .f16), b = half(bf16, .bf16)
            let bytes = Double(count)
            func cell(_ seconds: Double, _ width: Double) -> String {
                pad(String(format: "%.1f", seconds * 1e6), 10) + pad(String(format: "%.1f", bytes * width / seconds / 1e9), 7)
            }
            print(pad("\(rows)×\(columns)", 14) + cell(fp, 4) + cell(h, 2) + pad(String(format: "%.2f×", fp / h), 9)
                  + cell(b, 2) + String(format: "%.2f×", fp / b))
        }
        print()
    }

    private func time(_ body: () -> Void) -> Double { bestSecondsPerCall(quick: quick, body) }
}
