// Fused dequantize-and-multiply kernels over the kernel layout (PackedMatrix.swift).
//
// Decode (one token): y_r = Σ_g a_rg·(q_g · x_g) + o_rg·Σx_g — the integer codes meet x
// directly and the group's affine map is applied once per (row, group), so the inner loop is
// shift, mask, int→float, FMA per eight weights, with the bit width fixed per group (one
// branch per group, none per element). Prefill (several tokens): rows are dequantized block by
// block into an fp32 tile once and multiplied by all tokens with the SGEMM.
//
// All loops that matter live in this file so that they inline (debug builds compile files
// separately). The scalar reference is `PackedLinear.dequantize()` plus a float64 product.

import SlimKernels

extension PackedMatrix {
    // MARK: - Lane decode

    /// 2²³ as bits and value: OR-ing a small integer into its mantissa and subtracting 2²³
    /// converts eight lanes to Float exactly in two instructions (Swift's generic
    /// SIMD8<Int32> → SIMD8<Float> conversion is scalarised).
    @inline(__always) static var magicBits: SIMD8<UInt32> { SIMD8(repeating: 0x4B00_0000) }
    @inline(__always) static var magic: SIMD8<Float> { SIMD8(repeating: 8_388_608) }

    @inline(__always)
    static func field(_ v: SIMD8<UInt32>, shift: UInt32, mask: SIMD8<UInt32>) -> SIMD8<Float> {
        unsafeBitCast(((v &>> shift) & mask) | magicBits, to: SIMD8<Float>.self) - magic
    }

    /// q · x over one group as eight lane sums (the caller scales them by the group's a and
    /// reduces once per row): `n` word sets of `fields` fields of width `p` at `w`, x padded.
    /// Four accumulators, so four independent FMA chains hide the FMA latency.
    @inline(__always)
    static func groupDot(_ w: UnsafePointer<UInt32>, sets n: Int, fields: Int, p: Int,
                         x: UnsafePointer<Float>) -> SIMD8<Float> {
        let wr = UnsafeRawPointer(w), xr = UnsafeRawPointer(x)
        let mask = SIMD8<UInt32>(repeating: UInt32((1 << p) - 1))
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>(), acc2 = SIMD8<Float>(), acc3 = SIMD8<Float>()
        var xo = 0
        for k in 0..<n {
            let v = wr.loadUnaligned(fromByteOffset: k &* 32, as: SIMD8<UInt32>.self)
            var f = 0
            while f + 3 < fields {
                let x0 = xr.loadUnaligned(fromByteOffset: xo &* 4, as: SIMD8<Float>.self)
                let x1 = xr.loadUnaligned(fromByteOffset: (xo &+ 8) &* 4, as: SIMD8<Float>.self)
                let x2 = xr.loadUnaligned(fromByteOffset: (xo &+ 16) &* 4, as: SIMD8<Float>.self)
                let x3 = xr.loadUnaligned(fromByteOffset: (xo &+ 24) &* 4, as: SIMD8<Float>.self)
                acc0 = acc0.addingProduct(field(v, shift: UInt32(p &* f), mask: mask), x0)
                acc1 = acc1.addingProduct(field(v, shift: UInt32(p &* (f &+ 1)), mask: mask), x1)
                acc2 = acc2.addingProduct(field(v, shift: UInt32(p &* (f &+ 2)), mask: mask), x2)
                acc3 = acc3.addingProduct(field(v, shift: UInt32(p &* (f &+ 3)), mask: mask), x3)
                f &+= 4
                xo &+= 32
            }
            while f < fields {
                let x0 = xr.loadUnaligned(fromByteOffset: xo &* 4, as: SIMD8<Float>.self)
                acc0 = acc0.addingProduct(field(v, shift: UInt32(p &* f), mask: mask), x0)
                f &+= 1
                xo &+= 8
            }
        }
        return (acc0 + acc1) + (acc2 + acc3)
    }

    /// Specialised on the field width so that shifts and masks are constants.
    @inline(__always)
    func dot(row r: Int, group g: Int, x: UnsafePointer<Float>) -> SIMD8<Float> {
        let w = UnsafePointer(words + (r &* rowWords &+ wordOffset[g]))
        let xg = x + paddedOffset[g]
        switch fieldBits[g] {
        case 1: return Self.groupDot(w, sets: wordSets[g], fields: fieldsPerWord[g], p: 1, x: xg)
        case 2: return Self.groupDot(w, sets: wordSets[g], fields: fieldsPerWord[g], p: 2, x: xg)
        case 4: return Self.groupDot(w, sets: wordSets[g], fields: fieldsPerWord[g], p: 4, x: xg)
        default: return Self.groupDot(w, sets: wordSets[g], fields: fieldsPerWord[g], p: 8, x: xg)
        }
    }

    // MARK: - GEMV

    /// y[rows] = Ŵ·x (+ y when `accumulate`), x of `columns` Floats.
    public func gemv(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, accumulate: Bool = false,
                     threads: Int = Kernels.defaultThreads) {
        guard rows > 0 else { return }
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: paddedColumns)
        defer { padded.deallocate() }
        pad(x, into: padded)
        let k = groupCount
        var sums = [Float](repeating: 0, count: k)
        sums.withUnsafeMutableBufferPointer { groupSums(x, into: $0.baseAddress!) }
        sums.withUnsafeBufferPointer { sb in
            let args = GemvArgs(x: padded, y: y, sums: sb.baseAddress!)
            let workers = Kernels.workerCount(threads: threads, work: rows &* columns, minimumPerWorker: 1 << 16)
            let ranges = Kernels.splitRange(rows, parts: workers > 1 ? 4 * workers : 1, granule: 4)
            Kernels.parallelItems(workers: workers, items: ranges.count) { _, item in
                for r in ranges[item] {
                    // Σ_g a·(q·x) stays in eight lanes until the row is done (one reduction per
                    // row, not per group); Σ_g o·Σx is scalar.
                    var lanes = SIMD8<Float>()
                    var offsets: Float = 0
                    for g in 0..<k {
                        lanes = lanes.addingProduct(self.dot(row: r, group: g, x: args.x),
                                                    SIMD8<Float>(repeating: self.a[r &* k &+ g]))
                        offsets = offsets.addingProduct(self.o[r &* k &+ g], args.sums[g])
                    }
                    let acc = lanes.sum() + offsets
                    args.y[r] = accumulate ? args.y[r] + acc : acc
                }
            }
        }
    }

    /// Σx over each group's real columns (groupCount Floats): the offset terms o·Σx of a GEMV.
    @inline(__always)
    func groupSums(_ x: UnsafePointer<Float>, into sums: UnsafeMutablePointer<Float>) {
        for g in 0..<groupCount {
            var s: Float = 0
            for j in 0..<width[g] { s += x[columnStart[g] + j] }
            sums[g] = s
        }
    }

    private struct GemvArgs: @unchecked Sendable {
        let x: UnsafePointer<Float>
        let y: UnsafeMutablePointer<Float>
        let sums: UnsafePointer<Float>
        init(x: UnsafeMutablePointer<Float>, y: UnsafeMutablePointer<Float>, sums: UnsafePointer<Float>) {
            self.x = UnsafePointer(x)
            self.y = y
            self.sums = sums
        }
    }

    // MARK: - Tile dequantization

    /// Decodes rows `range` into `out` (row i of the range at `out + i·ld`, paddedColumns
    /// Floats in the padded column order; padding decodes to o, harmless against padded zeros).
    public func dequantizeRows(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>, ld: Int) {
        let k = groupCount
        for r in range {
            let dst = out + (r - range.lowerBound) * ld
            for g in 0..<k {
                let av = SIMD8<Float>(repeating: a[r &* k &+ g]), ov = SIMD8<Float>(repeating: o[r &* k &+ g])
                let p = fieldBits[g], fields = fieldsPerWord[g]
                let mask = SIMD8<UInt32>(repeating: UInt32((1 << p) - 1))
                let wr = UnsafeRawPointer(words + (r &* rowWords &+ wordOffset[g]))
                let dr = UnsafeMutableRawPointer(dst + paddedOffset[g])
                var xo = 0
                for set in 0..<wordSets[g] {
                    let v = wr.loadUnaligned(fromByteOffset: set &* 32, as: SIMD8<UInt32>.self)
                    for f in 0..<fields {
                        let q = Self.field(v, shift: UInt32(p &* f), mask: mask)
                        dr.storeBytes(of: av * q + ov,
                                      toByteOffset: xo &* 4, as: SIMD8<Float>.self)
                        xo &+= 8
                    }
                }
            }
        }
    }

    // MARK: - GEMM

    /// out[tokens × rows] = x[tokens × columns] · Ŵᵀ. One token runs `gemv`; more tokens
    /// dequantize blocks of rows into an fp32 tile and use the SGEMM for all tokens at once.
    public func gemm(x: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>,
                     threads: Int = Kernels.defaultThreads) {
        guard tokens > 0, rows > 0 else { return }
        if tokens == 1 { return gemv(x: x, y: out, threads: threads) }
        let cp = paddedColumns
        // Padded activations (a copy only when some group is padded).
        if cp == columns { return gemmPadded(xp: x, tokens: tokens, out: out, threads: threads) }
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: tokens * cp)
        defer { buffer.deallocate() }
        for t in 0..<tokens { pad(x + t * columns, into: buffer + t * cp) }
        gemmPadded(xp: buffer, tokens: tokens, out: out, threads: threads)
    }

    /// `gemm` on activations already in the padded column order (tokens × paddedColumns, zeros
    /// in the padding).
    func gemmPadded(xp: UnsafePointer<Float>, tokens: Int, out: UnsafeMutablePointer<Float>, threads: Int) {
        let cp = paddedColumns
        let block = min(rows, 256)
        let tile = UnsafeMutablePointer<Float>.allocate(capacity: block * cp)
        defer { tile.deallocate() }
        for start in stride(from: 0, to: rows, by: block) {
            let end = min(rows, start + block)
            let tileArgs = TileArgs(tile: tile)
            let ranges = Kernels.splitRange(end - start, parts: max(1, min(threads, 8)), granule: 8)
            Kernels.parallelItems(workers: threads, items: ranges.count) { _, item in
                let range = ranges[item]
                self.dequantizeRows((start + range.lowerBound)..<(start + range.upperBound),
                                    into: tileArgs.tile + range.lowerBound * cp, ld: cp)
            }
            Kernels.sgemmNT(m: tokens, n: end - start, k: cp, a: xp, lda: cp, b: tile, ldb: cp,
                            c: out + start, ldc: rows, threads: threads)
        }
    }

    private struct TileArgs: @unchecked Sendable {
        let tile: UnsafeMutablePointer<Float>
    }
}
