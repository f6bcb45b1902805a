import Dispatch
import Foundation
import SlimKernels
import SlimModel
import SlimPacking
import SlimRuntime

/// Decode speed of slim-packed checkpoints next to the fp32 model and next to the memory
/// roofline, all measured in this run:
/// - read bandwidth: all threads summing disjoint parts of a 512 MiB buffer (far beyond the
///   caches), best of 5;
/// - per model: KV-cache decode tokens/s at context 512 (the `prefill` section's procedure) and
///   the weight bytes one token reads (every linear as the kernels hold it, plus the classifier;
///   embedding rows and norms are negligible); roofline = bandwidth ÷ bytes per token.
/// For packed models the compact (file-format) bytes are shown too: the roofline of a kernel
/// that reads exactly the stored bits.
struct PackedSection {
    let fpModelPath: String
    let packedPaths: [String]
    let threads: Int
    let quick: Bool

    func run() {
        print("== packed decode: tokens/s vs the fp32 runtime and vs the memory-bandwidth roofline, \(threads) thread(s)")
        let bandwidth = Self.readBandwidth(threads: threads, repetitions: quick ? 3 : 5)
        print(String(format: "measured read bandwidth: %.2f GB/s (512 MiB, %d threads)", bandwidth / 1e9, threads))
        let decoder = ModelSection(modelPath: nil, threads: threads, python: "", scriptDir: "", quick: quick)
        print(pad("model", 34) + pad("MB/token", 10) + pad("tok/s", 9) + pad("roofline", 10) + pad("of roof", 9)
              + pad("vs fp32", 9) + "compact MB, roofline")
        var fpRate: Double?
        for path in [fpModelPath] + packedPaths {
            guard FileManager.default.fileExists(atPath: path) else {
                print("note: no model at \(path)")
                continue
            }
            let weights: LlamaWeights
            do {
                weights = try LlamaWeights(model: try LoadedModel(path: path), storage: .native)  // as the CLI runs it
            } catch {
                print("note: cannot load \(path): \(error)")
                continue
            }
            let (resident, compact) = Self.bytesPerToken(weights)
            let model = LlamaModel(weights: weights, threads: threads)
            let rate = Double(decoder.decodeSteps) / decoder.decodeSeconds(model)
            if fpRate == nil { fpRate = rate }
            let roof = bandwidth / Double(resident)
            let label = (path as NSString).lastPathComponent + (weights.config.packing.map { " (\($0.bits ?? 0)-bit)" } ?? " (dense)")
            print(pad(label, 34) + pad(String(format: "%.1f", Double(resident) / 1e6), 10) + pad(String(format: "%.1f", rate), 9)
                  + pad(String(format: "%.1f", roof), 10) + pad(String(format: "%.2f×", rate / roof), 9)
                  + pad(String(format: "%.2f×", rate / (fpRate ?? rate)), 9)
                  + String(format: "%.1f, %.1f tok/s", Double(compact) / 1e6, bandwidth / Double(compact)))
        }
        print()
    }

    /// (bytes the kernels read per token, bytes of the stored format per token).
    static func bytesPerToken(_ w: LlamaWeights) -> (resident: Int, compact: Int) {
        var resident = 0, compact = 0
        func add(_ op: any LinearOperator) {
            if let packed = op as? PackedLinearOperator {
                resident += packed.matrix.residentBytes
                compact += packed.matrix.storedBytes
            } else if let dense = op as? DenseLinear {
                resident += dense.weight.count * 4
                compact += dense.weight.count * 4
            } else if let half = op as? HalfLinear {
                resident += half.weight.count * 2
                compact += half.weight.count * 2
            }
        }
        for layer in w.layers { for kind in LinearKind.allCases { add(layer[kind]) } }
        add(w.lmHead)
        return (resident, compact)
    }

    /// Bytes per second of a multi-threaded streaming sum over 512 MiB (best of `repetitions`).
    static func readBandwidth(threads: Int, repetitions: Int) -> Double {
        let count = 512 << 20 / 4
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: 1, count: count)
        let ranges = Kernels.splitRange(count, parts: threads, granule: 1 << 16)
        let sink = UnsafeMutablePointer<Float>.allocate(capacity: ranges.count)
        defer { sink.deallocate() }
        let args = Args(buffer: buffer, sink: sink)
        var best = Double.infinity
        for _ in 0..<repetitions {
            let start = DispatchTime.now().uptimeNanoseconds
            DispatchQueue.concurrentPerform(iterations: ranges.count) { i in
                let raw = UnsafeRawPointer(args.buffer + ranges[i].lowerBound)
                var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
                var o = 0
                let bytes = ranges[i].count * 4
                while o + 128 <= bytes {
                    a0 += raw.loadUnaligned(fromByteOffset: o, as: SIMD8<Float>.self)
                    a1 += raw.loadUnaligned(fromByteOffset: o + 32, as: SIMD8<Float>.self)
                    a2 += raw.loadUnaligned(fromByteOffset: o + 64, as: SIMD8<Float>.self)
                    a3 += raw.loadUnaligned(fromByteOffset: o + 96, as: SIMD8<Float>.self)
                    o += 128
                }
                args.sink[i] = (a0 + a1 + a2 + a3).sum()
            }
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return Double(count * 4) / best
    }

    private struct Args: @unchecked Sendable {
        let buffer: UnsafeMutablePointer<Float>
        let sink: UnsafeMutablePointer<Float>
    }
}
