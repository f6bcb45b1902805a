// Decode GEMV with int8 activations (the CSlimQ8 kernel): x is quantized in blocks of 32 values
// to int8 and meets the codes in integer multiply-adds, 32 codes per AVX2 instruction, where the
// fp32 kernel (PackedKernels.swift) spends five float instructions per eight codes. This is
// llama.cpp's trade (Q8_0 activations): the only error is x's rounding to 1/254 of its block's
// largest |x|, bounded per row by Σ_g |a_rg|·Σ_b (d_b/2)·Σ_j∈b q_j (`int8ErrorBound`).

import CSlimQ8
import SlimKernels

/// The per-group layout tables in C's types, and each group's place in the int8 activations.
final class Q8Tables: @unchecked Sendable {
    let groups: Int
    /// fieldBits, fields, wordSets, wordOffset, paddedOffset, x8Offset: groups Int32 each.
    let storage: UnsafeMutablePointer<Int32>
    /// Bytes of int8 activations (32-byte multiples).
    let x8Bytes: Int

    init(fieldBits: [Int], fields: [Int], wordSets: [Int], wordOffset: [Int], paddedOffset: [Int]) {
        groups = fieldBits.count
        storage = .allocate(capacity: max(1, 6 * groups))
        var x8 = 0
        for g in 0..<groups {
            for (i, table) in [fieldBits, fields, wordSets, wordOffset, paddedOffset].enumerated() {
                storage[i * groups + g] = Int32(table[g])
            }
            storage[5 * groups + g] = Int32(x8)
            x8 += Int(slim_q8_group_bytes(Int32(fieldBits[g]), Int32(wordSets[g])))
        }
        x8Bytes = x8
    }

    deinit { storage.deallocate() }

    func table(_ i: Int) -> UnsafePointer<Int32> { UnsafePointer(storage + i * groups) }
}

extension PackedMatrix {
    /// Whether `gemvInt8` runs the AVX2 kernel on this CPU (else its scalar reference).
    public static var int8SIMDAvailable: Bool { slim_q8_simd_available() != 0 }

    /// The C view of this matrix (valid while `self` is alive).
    private var q8Matrix: slim_q8_matrix {
        slim_q8_matrix(words: UnsafePointer(words), a: UnsafePointer(a), o: UnsafePointer(o), row_words: Int64(rowWords),
                       groups: Int32(groupCount), field_bits: q8.table(0), fields: q8.table(1),
                       word_sets: q8.table(2), word_offset: q8.table(3), padded_offset: q8.table(4),
                       x8_offset: q8.table(5))
    }

    /// y[rows] = Ŵ·x̃ (+ y when `accumulate`), x of `columns` Floats quantized in blocks of 32 to
    /// int8 (x̃ = d_b·round(x/d_b), d_b = max|x_b|/127); the offsets use the exact Σx_g. A
    /// non-finite x makes every output NaN. `simd: false` runs the scalar reference, which gives the
    /// same bits as the AVX2 path.
    public func gemvInt8(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                         threads: Int = Kernels.defaultThreads, simd: Bool = true) {
        guard rows > 0 else { return }
        let k = groupCount
        // One allocation: padded x, block scales and group sums (Floats), then the aligned x8.
        let blocks = q8.x8Bytes / 32
        let floats = paddedColumns + blocks + k
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 4 * floats + 32 + q8.x8Bytes, alignment: 32)
        defer { raw.deallocate() }
        let padded = raw.bindMemory(to: Float.self, capacity: floats)
        let scale = padded + paddedColumns, sums = scale + blocks
        let x8 = (raw + (4 * floats + 31) / 32 * 32).bindMemory(to: Int8.self, capacity: q8.x8Bytes)
        pad(x, into: padded)
        groupSums(x, into: sums)
        var matrix = q8Matrix
        slim_q8_prepare(&matrix, padded, x8, scale)
        let args = Q8Args(matrix: matrix, x: slim_q8_activations(x8: x8, scale: scale, sums: sums), y: y)
        let workers = Kernels.workerCount(threads: threads, work: rows &* columns / 4, minimumPerWorker: 1 << 16)
        let ranges = Kernels.splitRange(rows, parts: workers > 1 ? 4 * workers : 1, granule: 4)
        Kernels.parallelItems(workers: workers, items: ranges.count) { _, item in
            var m = args.matrix, xa = args.x
            let range = ranges[item]
            slim_q8_gemv_rows(&m, &xa, Int64(range.lowerBound), Int64(range.upperBound), args.y,
                              accumulate ? 1 : 0, simd ? 1 : 0)
        }
    }

    /// out[tokens × rows] = x[tokens × columns] · Ŵᵀ with int8 activations, the same product as
    /// `gemvInt8` for every token: one token runs it; more (prefill, scoring) multiply the fp32
    /// kernels with x̃ = d_b·x8, the values the int8 kernel sees, and correct the offsets to the
    /// exact Σx (y = Ŵ·x̃ + o·(Σx − Σx̃)). Equal to per-token `gemvInt8` up to float summation order.
    public func gemmInt8(x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>,
                         threads: Int = Kernels.defaultThreads) {
        guard tokens > 0, rows > 0 else { return }
        if tokens == 1 { return gemvInt8(x: x, y: out, threads: threads) }
        let k = groupCount, cp = paddedColumns, blocks = q8.x8Bytes / 32
        let xq = UnsafeMutablePointer<Float>.allocate(capacity: tokens * cp)
        let delta = UnsafeMutablePointer<Float>.allocate(capacity: tokens * k)
        defer { xq.deallocate(); delta.deallocate() }
        // Per token (in parallel, each worker with its own scratch): x̃ and Σx − Σx̃ per group.
        let workers = max(1, min(threads, tokens))
        let stride = k + cp + blocks, x8Stride = (q8.x8Bytes + 31) / 32 * 32
        let perWorker = (4 * stride + x8Stride + 31) / 32 * 32  // x8 32-byte aligned, as slim_q8.h asks
        let scratch = UnsafeMutableRawPointer.allocate(byteCount: workers * perWorker, alignment: 32)
        defer { scratch.deallocate() }
        let args = RoundTripArgs(matrix: q8Matrix, x: x, xq: xq, delta: delta, scratch: scratch)
        Kernels.parallelItems(workers: workers, items: tokens) { worker, t in
            let base = args.scratch + worker * perWorker
            let x8 = base.bindMemory(to: Int8.self, capacity: x8Stride)
            let exact = (base + x8Stride).bindMemory(to: Float.self, capacity: stride)
            let padded = exact + k, scale = padded + cp
            let row = args.x + t * self.columns, dst = args.xq + t * cp
            var matrix = args.matrix
            self.pad(row, into: padded)
            slim_q8_prepare(&matrix, padded, x8, scale)
            slim_q8_dequantize(&matrix, x8, scale, dst)
            self.groupSums(row, into: exact)
            for g in 0..<k {
                var sum: Float = 0
                for j in 0..<(8 * self.fieldsPerWord[g] * self.wordSets[g]) { sum += dst[self.paddedOffset[g] + j] }
                args.delta[t * k + g] = exact[g] - sum
            }
        }
        gemmPadded(xp: xq, tokens: tokens, out: out, threads: threads)
        // out[tokens × rows] += δ[tokens × k] · oᵀ
        Kernels.sgemmNT(m: tokens, n: rows, k: k, a: delta, lda: k, b: o, ldb: k, c: out, ldc: rows,
                        accumulate: true, threads: threads)
    }

    private struct RoundTripArgs: @unchecked Sendable {
        let matrix: slim_q8_matrix
        let x: UnsafePointer<Float>
        let xq: UnsafeMutablePointer<Float>
        let delta: UnsafeMutablePointer<Float>
        let scratch: UnsafeMutableRawPointer
    }

    /// The bound on |gemvInt8(x)[r] − Ŵ·x| from x's rounding: Σ_g |a_rg|·Σ_b (d_b/2)·Σ_j∈b q_j
    /// over the kernel's blocks (float64; for tests).
    public func int8ErrorBound(x: UnsafePointer<Float>, row r: Int) -> Double {
        let k = groupCount
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: paddedColumns)
        defer { padded.deallocate() }
        pad(x, into: padded)
        var bound = 0.0
        for g in 0..<k {
            let p = fieldBits[g], regs = 8 / p, fields = fieldsPerWord[g]
            let mask = UInt32((1 << p) - 1)
            let xg = padded + paddedOffset[g]
            var sum = 0.0
            for set in 0..<wordSets[g] {
                for s in 0..<regs {
                    var largest: Float = 0, codes = 0.0
                    for j in 0..<4 where j * regs + s < fields {
                        let f = j * regs + s
                        for lane in 0..<8 {
                            largest = max(largest, abs(xg[8 * (set * fields + f) + lane]))
                            let word = words[r * rowWords + wordOffset[g] + set * 8 + lane]
                            codes += Double((word >> UInt32(p * f)) & mask)
                        }
                    }
                    sum += Double(largest / 127) / 2 * codes
                }
            }
            bound += abs(Double(a[r * k + g])) * sum
        }
        return bound
    }

    private struct Q8Args: @unchecked Sendable {
        let matrix: slim_q8_matrix
        let x: slim_q8_activations
        let y: UnsafeMutablePointer<Float>
    }
}
