import Dispatch

/// Throughput measurements of the kernels, for a `bench` command or ad-hoc tuning.
/// Only meaningful in a release build; inputs are deterministic pseudo-random values.
public enum KernelBenchmarks {
    /// One measurement: the best (minimum) time over the repetitions and the rate it implies.
    public struct Result: Sendable, CustomStringConvertible {
        /// Label of the measured shape, e.g. "sgemmNT 2048x576x576 t=2".
        public let name: String
        /// Best wall time of one call, in seconds.
        public let seconds: Double
        /// Floating-point throughput (GFLOP/s) for products, or bandwidth (GB/s) for GEMV.
        public let rate: Double
        /// "GFLOP/s" or "GB/s".
        public let unit: String

        public var description: String {
            let milliseconds = seconds * 1e3
            return "\(name): \(format(rate)) \(unit) (best \(format(milliseconds)) ms)"
        }

        private func format(_ value: Double) -> String {
            let scaled = (value * 10).rounded() / 10
            return String(describing: scaled)
        }
    }

    /// Square sizes and the SmolLM2-135M prefill shapes (2048-token window): q/k/v/o
    /// (576→576), gate/up (576→1536), down (1536→576) and lm_head (576→49152).
    public static let referenceShapes: [(m: Int, n: Int, k: Int)] = [
        (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048),
        (2048, 576, 576), (2048, 1536, 576), (2048, 576, 1536), (2048, 49152, 576),
    ]

    /// Times `Kernels.sgemmNT` for C[m×n] = A[m×k]·B[n×k]ᵀ and reports GFLOP/s (2·m·n·k per call).
    /// Runs one warm-up call, then repeats until `minimumSeconds` have elapsed (at least
    /// `minimumRepetitions` times) and keeps the best time, which filters out noise from other
    /// processes on the machine.
    public static func sgemmNT(m: Int, n: Int, k: Int, threads: Int = Kernels.defaultThreads,
                               minimumRepetitions: Int = 3, minimumSeconds: Double = 1) -> Result {
        precondition(m > 0 && n > 0 && k > 0, "sgemmNT benchmark: sizes must be positive")
        let a = randomMatrix(count: m * k, seed: 1)
        let b = randomMatrix(count: n * k, seed: 2)
        var c = [Float](repeating: 0, count: m * n)
        let seconds = bestTime(minimumRepetitions: minimumRepetitions, minimumSeconds: minimumSeconds) {
            a.withUnsafeBufferPointer { pa in
                b.withUnsafeBufferPointer { pb in
                    c.withUnsafeMutableBufferPointer { pc in
                        Kernels.sgemmNT(m: m, n: n, k: k, a: pa.baseAddress!, lda: k, b: pb.baseAddress!,
                                        ldb: k, c: pc.baseAddress!, ldc: n, threads: threads)
                    }
                }
            }
        }
        let flops = 2 * Double(m) * Double(n) * Double(k)
        return Result(name: "sgemmNT \(m)x\(n)x\(k) t=\(threads)", seconds: seconds,
                      rate: flops / seconds / 1e9, unit: "GFLOP/s")
    }

    /// Times `Kernels.syrkAccumulate` on X[rows×cols]; GFLOP/s counts the useful rows·cols²
    /// multiply-adds of the symmetric product (half the full product).
    public static func syrk(rows: Int, cols: Int, threads: Int = Kernels.defaultThreads,
                            minimumRepetitions: Int = 3, minimumSeconds: Double = 1) -> Result {
        precondition(rows > 0 && cols > 0, "syrk benchmark: sizes must be positive")
        let x = randomMatrix(count: rows * cols, seed: 3)
        var h = [Float](repeating: 0, count: cols * cols)
        let seconds = bestTime(minimumRepetitions: minimumRepetitions, minimumSeconds: minimumSeconds) {
            x.withUnsafeBufferPointer { px in
                h.withUnsafeMutableBufferPointer { ph in
                    Kernels.syrkAccumulate(x: px.baseAddress!, rows: rows, cols: cols, ldx: cols,
                                           h: ph.baseAddress!, scale: 1e-3, threads: threads)
                }
            }
        }
        let flops = Double(rows) * Double(cols) * Double(cols + 1)
        return Result(name: "syrk \(rows)x\(cols) t=\(threads)", seconds: seconds,
                      rate: flops / seconds / 1e9, unit: "GFLOP/s")
    }

    /// Times `Kernels.gemv` on A[m×k] and reports the matrix read bandwidth in GB/s.
    public static func gemv(m: Int, k: Int, threads: Int = Kernels.defaultThreads,
                            minimumRepetitions: Int = 3, minimumSeconds: Double = 1) -> Result {
        precondition(m > 0 && k > 0, "gemv benchmark: sizes must be positive")
        let a = randomMatrix(count: m * k, seed: 4)
        let x = randomMatrix(count: k, seed: 5)
        var y = [Float](repeating: 0, count: m)
        let seconds = bestTime(minimumRepetitions: minimumRepetitions, minimumSeconds: minimumSeconds) {
            a.withUnsafeBufferPointer { pa in
                x.withUnsafeBufferPointer { px in
                    y.withUnsafeMutableBufferPointer { py in
                        Kernels.gemv(m: m, k: k, a: pa.baseAddress!, lda: k, x: px.baseAddress!,
                                     y: py.baseAddress!, threads: threads)
                    }
                }
            }
        }
        let bytes = Double(m) * Double(k) * 4
        return Result(name: "gemv \(m)x\(k) t=\(threads)", seconds: seconds,
                      rate: bytes / seconds / 1e9, unit: "GB/s")
    }

    // MARK: Helpers

    /// Deterministic values in [-1, 1) from a 64-bit LCG (no dependence on the system RNG).
    static func randomMatrix(count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1
        return (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(Int32(truncatingIfNeeded: state >> 32)) / 2_147_483_648
        }
    }

    static func bestTime(minimumRepetitions: Int, minimumSeconds: Double, _ body: () -> Void) -> Double {
        body()  // warm-up: page faults, caches, thread pool start
        var best = Double.infinity
        var total = 0.0
        var repetitions = 0
        while repetitions < max(1, minimumRepetitions) || total < minimumSeconds {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = min(best, elapsed)
            total += elapsed
            repetitions += 1
        }
        return best
    }
}
