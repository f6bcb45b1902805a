// The in-memory layout the CPU kernels read, repacked at load from the file layout (as
// llama.cpp repacks Q4_0 for its AVX2 kernels). The file layout is a dense bit stream, ideal
// on disk and awkward for SIMD; this one puts eight consecutive codes in the eight 32-bit lanes
// of an AVX2 register, so one shift and one mask decode eight codes whatever the bit width.
//
// Per group g of width w with b bits: field width p = b for b ∈ {1, 2, 4, 8}, 4 for b = 3 and
// 8 for b = 5…7 (wider fields cost memory, not arithmetic). With u = ⌈w/8⌉ runs of eight
// codes, the group takes n = ⌈u/(32/p)⌉ word sets of eight UInt32 lanes and F = ⌈u/n⌉ fields
// per lane word: code j = 8·(k·F + f) + l sits in lane l of word set k at bits p·f…p·f+p−1.
// Padded columns (j ≥ w) hold code 0. Rows are contiguous: row r's word sets of every group,
// group after group. Parameters are folded so that ŵ = a·q + o for every bit width:
// b ≥ 2: a = s, o = −s·z (both products exact, so the decoded value is exactly s·(q − z));
// b = 1: a = 2α, o = μ − α.

import SlimKernels

/// A packed linear in the kernel layout, with the fused dequantize-and-multiply kernels.
public final class PackedMatrix: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    public let groupSize: Int
    public let bits: [UInt8]
    /// Per group: field width p, fields per lane word F, word sets n, first column, width,
    /// word offset within a row, offset of its first column in the padded input.
    public let fieldBits: [Int]
    public let fieldsPerWord: [Int]
    public let wordSets: [Int]
    public let columnStart: [Int]
    public let width: [Int]
    public let wordOffset: [Int]
    public let paddedOffset: [Int]
    /// UInt32 words per row, and padded input length (Σ 8·F·n).
    public let rowWords: Int
    public let paddedColumns: Int
    /// rows × rowWords.
    let words: UnsafeMutablePointer<UInt32>
    /// rows × K each: ŵ = a·q + o.
    let a: UnsafeMutablePointer<Float>
    let o: UnsafeMutablePointer<Float>

    /// Repacks `packed` (the file layout) into the kernel layout.
    public init(_ packed: PackedLinear) {
        let geo = packed.geometry
        storedBytes = geo.storageBytes
        rows = geo.rows
        columns = geo.columns
        groupSize = geo.groupSize
        bits = geo.bits
        let k = geo.groupCount
        var p = [Int](), f = [Int](), n = [Int](), start = [Int](), wid = [Int](), wo = [Int](), po = [Int]()
        var words = 0, padded = 0
        for g in 0..<k {
            let b = Int(bits[g])
            let field = b == 3 ? 4 : (b > 4 && b < 8 ? 8 : b)
            let range = geo.columnRange(group: g)
            let units = (range.count + 7) / 8
            let sets = (units + 32 / field - 1) / (32 / field)
            let perWord = (units + sets - 1) / sets
            p.append(field)
            n.append(sets)
            f.append(perWord)
            start.append(range.lowerBound)
            wid.append(range.count)
            wo.append(words)
            po.append(padded)
            words += 8 * sets
            padded += 8 * perWord * sets
        }
        fieldBits = p
        fieldsPerWord = f
        wordSets = n
        columnStart = start
        width = wid
        wordOffset = wo
        paddedOffset = po
        rowWords = words
        paddedColumns = padded
        self.words = .allocate(capacity: max(1, rows * words))
        self.words.initialize(repeating: 0, count: max(1, rows * words))
        a = .allocate(capacity: max(1, rows * k))
        o = .allocate(capacity: max(1, rows * k))
        q8 = Q8Tables(fieldBits: p, fields: f, wordSets: n, wordOffset: wo, paddedOffset: po)
        // Rows are independent: repack them in parallel (a 7B model has billions of codes).
        let target = Repack(words: self.words, a: a, o: o)
        let bitsPerGroup = bits.map(Int.init)
        let (fieldWidth, perWord, groupWords, groupWidth, stride) = (p, f, wo, wid, words)
        packed.qweight.withUnsafeBufferPointer { qw in
            let codeBytes = UnsafeSendable(qw.baseAddress!)
            let ranges = Kernels.splitRange(rows, parts: 8 * Kernels.defaultThreads, granule: 16)
            Kernels.parallelItems(workers: Kernels.defaultThreads, items: ranges.count) { _, item in
                for r in ranges[item] {
                    let row = target.words + r * stride
                    let codes = codeBytes.pointer + r * geo.codeBytesPerRow
                    for g in 0..<k {
                        let (s, z) = packed.parameters(row: r, group: g)
                        if bitsPerGroup[g] == 1 {
                            target.a[r * k + g] = 2 * s
                            target.o[r * k + g] = z - s
                        } else {
                            target.a[r * k + g] = s
                            target.o[r * k + g] = -(s * z)
                        }
                        let b = bitsPerGroup[g], base = geo.codeBitOffsets[g], field = UInt32(fieldWidth[g])
                        let fields = perWord[g], first = groupWords[g]
                        for j in 0..<groupWidth[g] {
                            let q = UInt32(BitStream.read(codes, bitOffset: base + j * b, width: b))
                            let unit = j >> 3, lane = j & 7
                            let set = unit / fields, slot = unit - set * fields
                            row[first + set * 8 + lane] |= q << (field * UInt32(slot))
                        }
                    }
                }
            }
        }
    }

    /// Per-group tables of the int8-activation GEMV (PackedQ8.swift), in C's types.
    let q8: Q8Tables

    /// Output pointers of the parallel repack (rows write disjoint parts).
    private struct Repack: @unchecked Sendable {
        let words: UnsafeMutablePointer<UInt32>
        let a: UnsafeMutablePointer<Float>
        let o: UnsafeMutablePointer<Float>
    }

    private struct UnsafeSendable: @unchecked Sendable {
        let pointer: UnsafePointer<UInt8>
        init(_ pointer: UnsafePointer<UInt8>) { self.pointer = pointer }
    }

    deinit {
        words.deallocate()
        a.deallocate()
        o.deallocate()
    }

    /// K.
    public var groupCount: Int { bits.count }

    /// Bytes of memory held (words and folded parameters): what one GEMV reads.
    public var residentBytes: Int { rows * rowWords * 4 + 2 * rows * groupCount * 4 }
    /// Bytes of the same layer in the file format (`PackedGeometry.storageBytes`).
    public let storedBytes: Int

    /// Copies the C input values of `x` into `padded` (paddedColumns Floats), each group at its
    /// padded offset, zeros in the padding (so padded codes meet 0, never a neighbour's value).
    @inline(__always)
    func pad(_ x: UnsafePointer<Float>, into padded: UnsafeMutablePointer<Float>) {
        if paddedColumns == columns {
            padded.update(from: x, count: columns)
            return
        }
        for g in 0..<groupCount {
            let dst = padded + paddedOffset[g]
            dst.update(from: x + columnStart[g], count: width[g])
            let full = 8 * fieldsPerWord[g] * wordSets[g]
            if full > width[g] { (dst + width[g]).update(repeating: 0, count: full - width[g]) }
        }
    }
}

// MARK: - Scalar decode of the kernel layout

extension PackedMatrix {
    /// Row r decoded from the kernel layout (C Floats, ŵ = a·q + o), plain loops: the check
    /// that repacking preserved every code and parameter.
    public func dequantizeRowScalar(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        let k = groupCount
        for g in 0..<k {
            let mask = UInt32((1 << fieldBits[g]) - 1)
            for j in 0..<width[g] {
                let unit = j / 8, lane = j % 8
                let set = unit / fieldsPerWord[g], field = unit % fieldsPerWord[g]
                let word = words[r * rowWords + wordOffset[g] + set * 8 + lane]
                let q = Float((word >> UInt32(fieldBits[g] * field)) & mask)
                out[columnStart[g] + j] = a[r * k + g] * q + o[r * k + g]
            }
        }
    }
}
