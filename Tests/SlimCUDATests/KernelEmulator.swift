import CSlimCUDA
import SlimKernels

@testable import SlimCUDA

/// A host emulation of cuda/packed_gemm.cu: the activation preparation (power-of-two scale, hi/lo
/// halves in B-fragment order, group sums) and the GEMM (A fragments from the kernel's decode,
/// mma as a 16×16·16×8 product, the per-group affine epilogue). It checks, without a GPU, that
/// the fragment maps of A, B and C agree with each other and with the repack; the hardware part
/// (mma.sync itself) is left to scripts/gpu-check.sh.
struct KernelEmulator {
    let layout: GPUPackedLayout
    let decoder: LayoutDecoder

    init(_ layout: GPUPackedLayout) {
        self.layout = layout
        decoder = LayoutDecoder(layout)
    }

    /// y [tokens × rows] = x [tokens × columns] · Ŵᵀ, computed as the kernel computes it.
    func gemm(x: [Float], tokens: Int) -> [Float] {
        let columns = layout.columns, groupSize = layout.groupSize, k = layout.bits.count, rows = layout.rows
        let gp = Int(slim_layout_padded_group(Int32(groupSize))), slabs = gp / 64
        let kTiles = k * gp / 16, ntiles = (tokens + 3) / 4
        let f16 = Kernels.Reference.f32ToF16, f32 = Kernels.Reference.f16ToF32

        // prep_x_kernel
        var xb = [UInt32](repeating: 0, count: ntiles * kTiles * 64)
        var sums = [Float](repeating: 0, count: ntiles * 4 * k), scales = [Float](repeating: 0, count: ntiles * 4)
        for t in 0..<(ntiles * 4) {
            let real = t < tokens
            var m: Float = 0
            if real { for c in 0..<columns { m = max(m, abs(x[t * columns + c])) } }
            var e = 0
            if m > 0, m.isFinite { e = max(Int(m.exponent) + 1 - 14, -100) }  // frexp exponent = exponent + 1
            let inverse = Float(sign: .plus, exponent: -e, significand: 1)
            scales[t] = real ? Float(sign: .plus, exponent: e, significand: 1) : 0
            for g in 0..<k {
                var s: Float = 0
                if real { for c in (g * groupSize)..<min(columns, (g + 1) * groupSize) { s += x[t * columns + c] * inverse } }
                sums[t * k + g] = s
            }
            let nt = t / 4, n0 = 2 * (t % 4)
            for w in 0..<(kTiles * 16) {
                let kt = w / 16, part = (w / 8) % 2, tig = (w / 2) % 4, j = w % 2
                let lane = Int32((n0 + part) * 4 + tig)
                var word: UInt32 = 0
                for h in 0..<2 {
                    let kp = Int32(kt * 16) + slim_frag_b_k(lane, Int32(j), Int32(h))
                    let c = Int(slim_layout_real_column(kp, Int32(groupSize), Int32(columns)))
                    let v = real && c >= 0 ? x[t * columns + c] * inverse : 0
                    let hi = f16(v), lo = f16(v - f32(hi))
                    word |= UInt32(part == 0 ? hi : lo) << (16 * UInt32(h))
                }
                xb[Int(slim_layout_xb_index(Int32(nt), Int32(kt), Int32(kTiles), lane, Int32(j)))] = word
            }
        }

        // packed_gemm_kernel
        var y = [Float](repeating: .nan, count: tokens * rows)
        for tile in 0..<decoder.tiles {
            for nt in 0..<ntiles {
                var acc = [[Float]](repeating: [Float](repeating: 0, count: 4), count: 16)
                for g in 0..<k {
                    var c = [[Float]](repeating: [Float](repeating: 0, count: 8), count: 16)
                    for slab in 0..<slabs {
                        for kt in 0..<4 {
                            var a = [[Float]](repeating: [Float](repeating: 0, count: 16), count: 16)
                            var b = [[Float]](repeating: [Float](repeating: 0, count: 8), count: 16)
                            let ktGlobal = (g * slabs + slab) * 4 + kt
                            for lane in Int32(0)..<32 {
                                for r in Int32(0)..<4 {
                                    let h = decoder.fragment(tile: tile, group: g, slab: slab, lane: Int(lane), kt: kt, register: Int(r))
                                    for e in Int32(0)..<2 {
                                        a[Int(slim_frag_a_row(lane, r))][Int(slim_frag_a_col(lane, r, e))] =
                                            f32(UInt16(truncatingIfNeeded: h >> (16 * UInt32(e))))
                                    }
                                }
                                for j in Int32(0)..<2 {
                                    let word = xb[Int(slim_layout_xb_index(Int32(nt), Int32(ktGlobal), Int32(kTiles), lane, j))]
                                    for e in Int32(0)..<2 {
                                        b[Int(slim_frag_b_k(lane, j, e))][Int(slim_frag_b_n(lane))] =
                                            f32(UInt16(truncatingIfNeeded: word >> (16 * UInt32(e))))
                                    }
                                }
                            }
                            for row in 0..<16 {
                                for n in 0..<8 {
                                    for kk in 0..<16 { c[row][n] += a[row][kk] * b[kk][n] }
                                }
                            }
                        }
                    }
                    // Epilogue through the C-fragment map: lane (row gid, token tig) holds
                    // columns 2·tig (hi) and 2·tig + 1 (lo).
                    for lane in Int32(0)..<32 {
                        for i in Int32(0)..<4 where i % 2 == 0 {
                            let row = Int(slim_frag_c_row(lane, i)), col = Int(slim_frag_c_col(lane, i))
                            let token = col / 2
                            guard tile * 16 + row < rows else { continue }
                            let (av, ov) = decoder.affine(row: tile * 16 + row, group: g)
                            let sx = 4 * nt + token < tokens ? sums[(4 * nt + token) * k + g] : 0
                            acc[row][token] += av * (c[row][col] + c[row][col + 1]) + ov * sx
                        }
                    }
                }
                for row in 0..<16 where tile * 16 + row < rows {
                    for token in 0..<4 where 4 * nt + token < tokens {
                        y[(4 * nt + token) * rows + tile * 16 + row] = acc[row][token] * scales[4 * nt + token]
                    }
                }
            }
        }
        return y
    }
}
