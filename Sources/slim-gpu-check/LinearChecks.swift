import SlimCUDA
import SlimKernels
import SlimPacking

/// Packed and dense linears on the GPU against PackedLinear.dequantize() (the format's scalar
/// reference) / the fp32 weights, times x in float64: every bit width and mix, ragged last groups,
/// group sizes that are not multiples of 64, row counts that are not multiples of 16, token
/// counts around every tile boundary, bias and accumulation.
struct LinearChecks {
    let context: CUDAContext
    let report: Report
    let quick: Bool

    /// (columns, group size, bits per group).
    static let bitCases: [(Int, Int, [UInt8])] = [
        (128, 32, [1, 2, 3, 4]),
        (256, 64, [2, 1, 3, 2]),
        (576, 128, [3, 2, 1, 2, 2]),          // SmolLM2 hidden: last group 64 wide
        (172, 32, [2, 3, 1, 4, 2, 3]),        // stories260K MLP: last group 12 wide
        (96, 32, [5, 6, 7]),
        (80, 16, [8, 1, 4, 3, 2]),
        (40, 128, [1]),
        (300, 100, [3, 4, 2]),                // group size 100: padded to 128
        (200, 192, [2, 5]),                   // 3 slabs per group
        (1024, 128, [1, 1, 1, 1, 1, 1, 1, 1]),
        (1024, 128, [2, 2, 2, 2, 2, 2, 2, 2]),
        (1024, 128, [3, 3, 3, 3, 3, 3, 3, 3]),
        (1024, 128, [4, 4, 4, 4, 4, 4, 4, 4]),
    ]

    func run() {
        var seed: UInt64 = 1
        let tokenCounts = quick ? [1, 5, 17] : [1, 2, 3, 4, 5, 8, 9, 16, 17, 40]
        for (columns, groupSize, bits) in Self.bitCases {
            for rows in [37, 300] {
                for tokens in tokenCounts {
                    seed += 1
                    let label = "packed \(rows)x\(columns) G\(groupSize) bits \(bits) T\(tokens)"
                    report.run(label) {
                        let packed = try randomPacked(rows: rows, columns: columns, groupSize: groupSize, bits: bits, seed: seed)
                        try checkPacked(packed, tokens: tokens, label: label, seed: seed)
                    }
                }
            }
        }
        report.run("packed bias + accumulate") {
            let packed = try randomPacked(rows: 45, columns: 300, groupSize: 64, bits: [1, 2, 3, 4, 5], seed: 77)
            var rng = Random(seed: 78)
            for tokens in [1, 6, 20] {
                try checkPacked(packed, tokens: tokens, bias: rng.values(45), accumulate: true,
                                label: "packed 45x300 bias+accumulate T\(tokens)", seed: 79)
            }
        }
        // Model shapes with a SliM-LLM-like mix; LLaMA-7B shapes at 2 and 3 bits.
        var shapes: [(Int, Int, Int)] = [(1536, 576, 2), (576, 1536, 3), (192, 576, 2)]
        if !quick { shapes += [(4096, 4096, 2), (11008, 4096, 3), (4096, 11008, 2)] }
        for (rows, columns, target) in shapes {
            let bits = SyntheticModel.bitMix(groups: (columns + 127) / 128, bits: target, seed: UInt64(rows + columns))
            report.run("packed \(rows)x\(columns) mix \(target)-bit") {
                let packed = try randomPacked(rows: rows, columns: columns, groupSize: 128, bits: bits, seed: UInt64(rows))
                for tokens in [1, 7, 64] {
                    try checkPacked(packed, tokens: tokens, label: "packed \(rows)x\(columns) mix \(target)-bit T\(tokens)",
                                    seed: UInt64(tokens))
                }
            }
        }
        denseChecks()
        timingChecks()
    }

    // MARK: - Packed

    /// `timeFirst`: time the linear with three weight copies before applying it.
    func checkPacked(_ packed: PackedLinear, tokens: Int, bias: [Float]? = nil, accumulate: Bool = false, label: String,
                     seed: UInt64, timeFirst: Bool = false) throws {
        let rows = packed.rows, columns = packed.columns
        var rng = Random(seed: seed ^ 0x5EED)
        var x = rng.values(tokens * columns)
        // A token of large and one of tiny activations: the per-token power-of-two scaling.
        if tokens >= 3 {
            for j in 0..<columns { x[columns + j] *= 4000; x[2 * columns + j] *= 1e-5 }
        }
        let y0 = accumulate ? rng.values(tokens * rows) : nil
        let linear = try CUDALinear.packed(GPUPackedLayout(packed), bias: bias, context: context)
        if timeFirst { _ = try linear.time(tokens: tokens, iterations: 3, footprint: 3 * linear.weightBytes) }
        let (got, want, scale) = try apply(linear, weights: packed.dequantize(), x: x, tokens: tokens, bias: bias, y0: y0)
        report.compare(label, got: got, want: want, scale: scale, tolerance: 2e-5) { i in "[token \(i / rows), row \(i % rows)]" }
    }

    /// Runs `linear` on NaN-poisoned outputs (with guard elements) and computes the float64
    /// reference: (GPU result incl. guards, reference, per-element scale Σ|w·x| + |b| + |y0|).
    func apply(_ linear: CUDALinear, weights w: [Float], x: [Float], tokens: Int, bias: [Float]?,
               y0: [Float]?) throws -> ([Float], [Double], [Double]) {
        let rows = linear.rows, columns = linear.columns
        let xb = try CUDABuffer(context: context, values: x)
        let yb = try CUDABuffer<Float>(context: context, count: tokens * rows + Report.guardCount)
        try yb.fill(bitPattern: Report.poison)
        if let y0 { try yb.upload(y0) }
        try linear.apply(x: xb, tokens: tokens, y: yb, accumulate: y0 != nil)
        let got = try yb.download()
        var want = [Double](repeating: 0, count: tokens * rows), scale = want
        w.withUnsafeBufferPointer { wp in
            x.withUnsafeBufferPointer { xp in
                for t in 0..<tokens {
                    for r in 0..<rows {
                        var s = 0.0, m = 0.0
                        let wr = wp.baseAddress! + r * columns, xr = xp.baseAddress! + t * columns
                        for c in 0..<columns {
                            let p = Double(wr[c]) * Double(xr[c])
                            s += p
                            m += abs(p)
                        }
                        if let bias { s += Double(bias[r]); m += abs(Double(bias[r])) }
                        if let y0 { s += Double(y0[t * rows + r]); m += abs(Double(y0[t * rows + r])) }
                        want[t * rows + r] = s
                        scale[t * rows + r] = m
                    }
                }
            }
        }
        return (got, want, scale)
    }

    // MARK: - Timing

    /// `CUDALinear.time` on the path the speed report takes (it runs on the emulator too): the
    /// number of weight copies follows the footprint, the times are positive and finite, an
    /// impossible footprint is an error, and the linear still computes correctly afterwards
    /// (the copies were deep and freed without touching it).
    func timingChecks() {
        report.run("timing rotates weight copies") {
            let packed = try randomPacked(rows: 40, columns: 256, groupSize: 64, bits: [1, 2, 3, 4], seed: 90)
            let dense = try CUDALinear.dense(.f16((0..<(24 * 64)).map { UInt16($0 % 0x3BFF) }), rows: 24, columns: 64,
                                             bias: [Float](repeating: 0.5, count: 24), context: context)
            let gpuPacked = try CUDALinear.packed(GPUPackedLayout(packed), bias: nil, context: context)
            for (name, linear) in [("packed", gpuPacked), ("dense", dense)] {
                for (footprint, copies) in [(0, 1), (linear.weightBytes * 5 / 2, 3)] {
                    let t = try linear.time(tokens: 2, iterations: 4, footprint: footprint)
                    guard t.copies == copies, t.call.isFinite, t.call > 0, t.kernel.isFinite, t.kernel > 0 else {
                        report.fail("timing \(name)", "footprint \(footprint) B of a \(linear.weightBytes) B linear: "
                                    + "\(t.copies) copies (want \(copies)), call \(t.call) s, kernel \(t.kernel) s")
                        return
                    }
                }
                do {
                    _ = try linear.time(tokens: 1, iterations: 1, footprint: linear.weightBytes * 5000)
                    report.fail("timing \(name)", "5000 copies were not refused")
                    return
                } catch {
                    guard "\(error)".contains("at most 4096") else {
                        report.fail("timing \(name)", "5000 copies refused with '\(error)'")
                        return
                    }
                }
            }
            report.pass("timing rotates weight copies", "1 and 3 copies (packed and dense), 5000 refused")
        }
        report.run("packed after timing") {
            let packed = try randomPacked(rows: 40, columns: 256, groupSize: 64, bits: [1, 2, 3, 4], seed: 90)
            try checkPacked(packed, tokens: 3, label: "packed 40x256 after timing with copies", seed: 91, timeFirst: true)
        }
    }

    // MARK: - Dense

    func denseChecks() {
        var seed: UInt64 = 500
        for (rows, columns) in [(37, 172), (300, 576), (1000, 4096), (33, 64)] {
            for type in [CUDAWeightType.f32, .f16, .bf16] {
                for tokens in [1, 3, 9, 20] {
                    seed += 1
                    let label = "dense \(type) \(rows)x\(columns) T\(tokens)"
                    report.run(label) {
                        var rng = Random(seed: seed)
                        var w = rng.values(rows * columns, scale: 0.1)
                        let weights: CUDADenseWeights
                        switch type {
                        case .f16:
                            let halves = w.map { Kernels.Reference.f32ToF16($0) }
                            w = halves.map { Kernels.Reference.f16ToF32($0) }
                            weights = .f16(halves)
                        case .bf16:
                            let halves = w.map { Kernels.Reference.f32ToBF16($0) }
                            w = halves.map { Kernels.Reference.bf16ToF32($0) }
                            weights = .bf16(halves)
                        case .f32:
                            weights = .f32(w)
                        }
                        let bias = tokens == 3 ? rng.values(rows) : nil
                        let y0 = tokens == 9 ? rng.values(tokens * rows) : nil
                        let linear = try CUDALinear.dense(weights, rows: rows, columns: columns, bias: bias, context: context)
                        let (got, want, scale) = try apply(linear, weights: w, x: rng.values(tokens * columns), tokens: tokens,
                                                           bias: bias, y0: y0)
                        report.compare(label, got: got, want: want, scale: scale, tolerance: 1e-5) { i in
                            "[token \(i / rows), row \(i % rows)]"
                        }
                    }
                }
            }
        }
    }
}

/// Random quantizer-shaped output (fp16 scales and means, integer zero points, codes in range,
/// 1-bit codes ±1) packed by the format's encoder.
func randomPacked(rows: Int, columns: Int, groupSize: Int, bits: [UInt8], seed: UInt64) throws -> PackedLinear {
    var rng = Random(seed: seed)
    func half(_ x: Float) -> Float { Kernels.Reference.f16ToF32(Kernels.Reference.f32ToF16(x)) }
    let k = bits.count
    var scales: [Float] = [], zeros: [Float] = []
    scales.reserveCapacity(rows * k)
    zeros.reserveCapacity(rows * k)
    var codes = [UInt8](repeating: 0, count: rows * columns)
    for r in 0..<rows {
        for g in 0..<k {
            let b = Int(bits[g])
            scales.append(half(rng.unit() * 0.05 + 1e-3))
            zeros.append(b == 1 ? half((rng.unit() - 0.5) * 0.02) : Float(rng.next() % UInt64(1 << b)))
            for c in (g * groupSize)..<min(columns, (g + 1) * groupSize) {
                codes[r * columns + c] = b == 1 ? (rng.next() & 1 == 0 ? 1 : 3) : UInt8(rng.next() % UInt64(1 << b))
            }
        }
    }
    return try PackedLinear(rows: rows, columns: columns, groupSize: groupSize, bits: bits, scales: scales,
                            zeros: zeros, codes: codes)
}
