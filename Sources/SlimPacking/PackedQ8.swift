// Decode GEMV with int8 activations (the CSlimQ8 kernel): x is quantized per group to int8 and
// meets the codes in integer multiply-adds, 32 codes per AVX2 instruction, where the fp32 kernel
// (PackedKernels.swift) spends five float instructions per eight codes. This is llama.cpp's
// trade (Q8 activations for its k-quants): the only error is x's rounding to 1/254 of the group's
// largest |x|, bounded per row by Σ_g |a_rg|·(d_g/2)·Σ_j q_gj (`int8ErrorBound`).

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

    /// y[rows] = Ŵ·x̃ (+ y when `accumulate`), x of `columns` Floats quantized per group to int8
    /// (x̃ = d_g·round(x/d_g), d_g = max|x_g|/127); the offsets use the exact Σx_g. A non-finite
    /// x makes its groups' outputs NaN. `simd: false` runs the scalar reference, which gives the
    /// same bits as the AVX2 path.
    public func gemvInt8(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                         threads: Int = Kernels.defaultThreads, simd: Bool = true) {
        guard rows > 0 else { return }
        let k = groupCount
        // One allocation: padded x, scales and sums (Floats), then the 32-byte-aligned x8.
        let floats = paddedColumns + 2 * k
        let raw = UnsafeMutableRawPointer.allocate(byteCount: 4 * floats + 32 + q8.x8Bytes, alignment: 32)
        defer { raw.deallocate() }
        let padded = raw.bindMemory(to: Float.self, capacity: floats)
        let scale = padded + paddedColumns, sums = scale + k
        let x8 = (raw + (4 * floats + 31) / 32 * 32).bindMemory(to: Int8.self, capacity: q8.x8Bytes)
        pad(x, into: padded)
        for g in 0..<k {
            var s: Float = 0
            for j in 0..<width[g] { s += x[columnStart[g] + j] }
            sums[g] = s
        }
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

    /// The bound on |gemvInt8(x)[r] − Ŵ·x| from x's rounding: Σ_g |a_rg|·(d_g/2)·Σ_j q_gj
    /// (float64; for tests and the benchmark's error column).
    public func int8ErrorBound(x: UnsafePointer<Float>, row r: Int) -> Double {
        let k = groupCount
        var bound = 0.0
        for g in 0..<k {
            var largest: Float = 0
            for j in 0..<width[g] { largest = max(largest, abs(x[columnStart[g] + j])) }
            let mask = UInt32((1 << fieldBits[g]) - 1)
            var codes = 0.0
            for j in 0..<width[g] {
                let unit = j / 8, lane = j % 8
                let set = unit / fieldsPerWord[g], field = unit % fieldsPerWord[g]
                let word = words[r * rowWords + wordOffset[g] + set * 8 + lane]
                codes += Double((word >> UInt32(fieldBits[g] * field)) & mask)
            }
            bound += abs(Double(a[r * k + g])) * Double(largest / 127) / 2 * codes
        }
        return bound
    }

    private struct Q8Args: @unchecked Sendable {
        let matrix: slim_q8_matrix
        let x: slim_q8_activations
        let y: UnsafeMutablePointer<Float>
    }
}
