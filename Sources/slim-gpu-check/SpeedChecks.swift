import Foundation
import SlimCUDA

/// Speed of the packed GEMV at LLaMA-7B shapes next to the device-to-device copy bandwidth
/// measured in the same run (issue target: ≥ 70 % of it), plus the small-batch GEMM and this
/// backend's fp16 dense GEMV on the same shapes. Reported as SPEED lines; they never fail the run.
struct SpeedChecks {
    let context: CUDAContext
    let report: Report

    static let shapes = [(4096, 4096), (11008, 4096), (4096, 11008)]

    func run() {
        report.run("speed") {
            let copy = try context.copyBandwidth(bytes: 512 << 20, iterations: 20)
            print(String(format: "SPEED copy D2D: %.0f GB/s (512 MiB copies, read + write bytes)", copy / 1e9))
            for bits in [2, 3] {
                for (rows, columns) in Self.shapes {
                    let mix = SyntheticModel.bitMix(groups: columns / 128, bits: bits, seed: UInt64(rows ^ columns))
                    let layout = GPUPackedLayout.random(rows: rows, columns: columns, groupSize: 128, bits: mix,
                                                        weightStd: 0.02, seed: UInt64(bits))
                    let linear = try CUDALinear.packed(layout, context: context)
                    let bytes = Double(linear.weightBytes + 4 * columns)   // weights + x, once
                    let (call, kernel) = try linear.time(tokens: 1, iterations: 200)
                    let rate = bytes / kernel
                    print(String(format: "SPEED gemv %5dx%-5d %d-bit mix: kernel %6.2f µs = %5.0f GB/s = %3.0f%% of copy "
                                 + "(target ≥ 70%%); per call incl. activation prep %6.2f µs",
                                 rows, columns, bits, kernel * 1e6, rate / 1e9, 100 * rate / copy, call * 1e6))
                    for tokens in [4, 16, 64] {
                        let (_, t) = try linear.time(tokens: tokens, iterations: 50)
                        print(String(format: "SPEED gemm %5dx%-5d %d-bit mix T=%-3d: kernel %7.2f µs, %5.1f TFLOP/s, %5.0f GB/s",
                                     rows, columns, bits, tokens, t * 1e6, 2 * Double(rows * columns * tokens) / t / 1e12,
                                     bytes / t / 1e9))
                    }
                }
            }
            for (rows, columns) in Self.shapes {
                var rng = Random(seed: UInt64(rows))
                let halves = (0..<(rows * columns)).map { _ in UInt16(truncatingIfNeeded: rng.next() & 0x3BFF) }
                let linear = try CUDALinear.dense(.f16(halves), rows: rows, columns: columns, context: context)
                let (_, kernel) = try linear.time(tokens: 1, iterations: 200)
                let rate = Double(2 * rows * columns + 4 * columns) / kernel
                print(String(format: "SPEED dense fp16 gemv %5dx%-5d (this backend): kernel %6.2f µs = %5.0f GB/s = %3.0f%% of copy",
                             rows, columns, kernel * 1e6, rate / 1e9, 100 * rate / copy))
            }
        }
    }
}
