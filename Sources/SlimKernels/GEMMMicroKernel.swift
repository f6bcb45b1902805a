// The register-blocked inner kernel of the blocked GEMM and the packing routines that feed it.
//
// Packed layouts (all contiguous, 64-byte aligned scratch):
// - an A micro-panel holds `MR` rows of op(A) for `kc` steps: element (r, p) at `p * MR + r`;
// - a B micro-panel holds `NR` columns of op(B) for `kc` steps: element (p, c) at `p * NR + c`.
// Rows/columns past the matrix edge are packed as zeros so the kernel never branches on size;
// the padded lanes of the result are computed and discarded.

// MARK: - Blocking

/// Cache blocking and threading thresholds of the GEMM driver. `standard` is what the public
/// API uses (tuned on AMD Zen 4: 32 KiB L1d, 1 MiB L2 per core, 32 MiB L3); the tests pass
/// tiny values to exercise every loop boundary on small matrices.
struct GemmBlocking: Sendable {
    /// Rows of C per micro-tile (broadcast from packed A).
    static let mr = 6
    /// Columns of C per micro-tile (two `SIMD8<Float>` loaded from packed B).
    /// 6 × 16 uses 12 of the 16 AVX2 registers for accumulators, 2 for B and 1 for A.
    static let nr = 16

    /// Largest k-block. The k-blocking is a function of k alone — never of the thread count —
    /// because it fixes the order of the floating-point reduction. It is large so that C is
    /// usually touched once per tile: Swift has no prefetch instruction, and re-loading C tiles
    /// that fell out of cache between k-blocks stalls the kernel (measured −20 % at 2048³ with
    /// 256). Packed panels then stream from L2 (B micro-panel 16·kc floats = 128 KiB at 2048),
    /// which the kernel's 2 loads per 12 FMAs sustain.
    var kcMax = 2048
    /// Rows of packed A per block (MC × KC floats = 384 KiB at kc 2048: stays in L2 with a B
    /// micro-panel). Small MC costs little because the B panel is re-read from L3 only once per
    /// MC/MR = 8 micro-tiles of about 12·kc·MR FMAs each. A multiple of `mr`.
    var mcMax = 48
    /// Floats of packed B per block (2 M floats = 8 MiB, in L3), whatever kc is.
    var packedBFloats = 1 << 21
    /// Floating-point operations a worker must have before another thread is worth starting
    /// (dispatch and packing overheads are a few tens of microseconds).
    var minimumFlopsPerWorker = 4_000_000

    static let standard = GemmBlocking()

    /// Columns of packed B per block for k-blocks of at most `kc`: a multiple of `nr`.
    func ncMax(kc: Int) -> Int { max(Self.nr, packedBFloats / max(kc, 1) / Self.nr * Self.nr) }

    /// The k-blocks: `ceil(k / kcMax)` blocks of near-equal length, as (start, length).
    func kBlocks(_ k: Int) -> [(start: Int, count: Int)] {
        guard k > 0 else { return [] }
        let blocks = (k + kcMax - 1) / kcMax
        var result: [(start: Int, count: Int)] = []
        result.reserveCapacity(blocks)
        var start = 0
        for index in 0..<blocks {
            let count = k / blocks + (index < k % blocks ? 1 : 0)
            result.append((start, count))
            start += count
        }
        return result
    }
}

/// How an operand is stored relative to the reduction dimension k.
enum OperandLayout {
    /// Consecutive k for one row of op(A) (or one column of op(B)) are contiguous:
    /// element (i, p) at `i * ld + p`. This is A in `sgemmNT`/`sgemmNN` and B in `sgemmNT`.
    case kContiguous
    /// Consecutive rows of op(A) (columns of op(B)) are contiguous for a fixed k:
    /// element (i, p) at `p * ld + i`. This is A in `sgemmTN` and B in `sgemmNN`/`sgemmTN`.
    case mnContiguous
}

// MARK: - Packing

enum GemmPacking {
    /// Packs `width` lanes (`lane0 ..< lane0 + width`, at most `panel`) of an operand for the
    /// k-range `p0 ..< p0 + kc` into one micro-panel of `panel` lanes, zero-filling the rest.
    @inline(__always)
    static func packPanel(_ src: UnsafePointer<Float>, ld: Int, layout: OperandLayout,
                          lane0: Int, width: Int, p0: Int, kc: Int, panel: Int,
                          into dest: UnsafeMutablePointer<Float>) {
        switch layout {
        case .mnContiguous:
            // Each k-step is a contiguous run of lanes: vector copies for the full panel widths
            // the kernel uses (a `memmove` call per 24–64 bytes would dominate), else scalar.
            var s = src + (p0 &* ld &+ lane0)
            var d = dest
            if width == panel && panel == 16 {
                for _ in 0..<kc {
                    let sr = UnsafeRawPointer(s), dr = UnsafeMutableRawPointer(d)
                    dr.storeBytes(of: sr.loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
                    dr.storeBytes(of: sr.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self),
                                  toByteOffset: 32, as: SIMD8<Float>.self)
                    s += ld
                    d += 16
                }
            } else if width == panel && panel == 6 {
                for _ in 0..<kc {
                    let sr = UnsafeRawPointer(s), dr = UnsafeMutableRawPointer(d)
                    dr.storeBytes(of: sr.loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
                    dr.storeBytes(of: sr.loadUnaligned(fromByteOffset: 16, as: SIMD2<Float>.self),
                                  toByteOffset: 16, as: SIMD2<Float>.self)
                    s += ld
                    d += 6
                }
            } else {
                for _ in 0..<kc {
                    for lane in 0..<width { d[lane] = s[lane] }
                    for lane in width..<panel { d[lane] = 0 }
                    s += ld
                    d += panel
                }
            }
        case .kContiguous:
            // Each lane is a contiguous run over k: a transpose. Work in k-chunks whose slice of
            // the panel (at most 64·16 floats = 4 KiB) stays in L1 while every lane writes into
            // it with stride `panel`; unchunked, a long panel would miss L1 on every write.
            let chunk = 64
            var c0 = 0
            while c0 < kc {
                let c1 = min(kc, c0 &+ chunk)
                for lane in 0..<width {
                    let s = src + ((lane0 &+ lane) &* ld &+ p0)
                    var d = dest + (c0 &* panel &+ lane)
                    var p = c0
                    while p &+ 4 <= c1 {
                        d[0] = s[p]
                        d[panel] = s[p &+ 1]
                        d[2 &* panel] = s[p &+ 2]
                        d[3 &* panel] = s[p &+ 3]
                        d += 4 &* panel
                        p &+= 4
                    }
                    while p < c1 {
                        d[0] = s[p]
                        d += panel
                        p &+= 1
                    }
                }
                if width < panel {
                    for lane in width..<panel {
                        var d = dest + (c0 &* panel &+ lane)
                        for _ in c0..<c1 {
                            d[0] = 0
                            d += panel
                        }
                    }
                }
                c0 = c1
            }
        }
    }

    /// Packs lanes `lane0 ..< lane0 + count` as consecutive micro-panels of `panel` lanes.
    /// A 16-bit `format` is widened to Float on the way (exactly: the panels equal those of the
    /// operand's fp32 conversion).
    static func packBlock(_ src: UnsafeRawPointer, format: StorageFormat, ld: Int, layout: OperandLayout,
                          lane0: Int, count: Int, p0: Int, kc: Int, panel: Int,
                          into dest: UnsafeMutablePointer<Float>) {
        if layout == .mnContiguous {
            switch format {
            case .f16: return packWideningRows(F16Rows.self, src, ld: ld, lane0: lane0, count: count, p0: p0, kc: kc,
                                               panel: panel, into: dest)
            case .bf16: return packWideningRows(BF16Rows.self, src, ld: ld, lane0: lane0, count: count, p0: p0, kc: kc,
                                                panel: panel, into: dest)
            case .f32: break  // packPanel below
            }
        }
        var lane = 0
        var d = dest
        while lane < count {
            let width = min(panel, count - lane)
            switch format {
            case .f32:
                packPanel(src.assumingMemoryBound(to: Float.self), ld: ld, layout: layout, lane0: lane0 &+ lane,
                          width: width, p0: p0, kc: kc, panel: panel, into: d)
            case .f16:
                packWidening(F16Rows.self, src, ld: ld, lane0: lane0 &+ lane, width: width, p0: p0, kc: kc,
                             panel: panel, into: d)
            case .bf16:
                packWidening(BF16Rows.self, src, ld: ld, lane0: lane0 &+ lane, width: width, p0: p0, kc: kc,
                             panel: panel, into: d)
            }
            lane &+= panel
            d += panel &* kc
        }
    }

    /// `packBlock` for an mn-contiguous 16-bit operand (row p of B holds lanes contiguously, as
    /// a KV cache's values do): each k row's lanes are widened straight into their panel slots.
    static func packWideningRows<E: RowElements>(_: E.Type, _ src: UnsafeRawPointer, ld: Int, lane0: Int, count: Int,
                                                 p0: Int, kc: Int, panel: Int, into dest: UnsafeMutablePointer<Float>) {
        var lane = 0
        var d = dest
        while lane < count {
            let width = min(panel, count &- lane)
            var slot = d
            for p in 0..<kc {
                E.widen(src + (p0 &+ p) &* ld &* E.byteSize, lane0 &+ lane, width, slot)
                if width < panel { (slot + width).update(repeating: 0, count: panel &- width) }
                slot += panel
            }
            lane &+= panel
            d += panel &* kc
        }
    }

    /// `packPanel` for a k-contiguous 16-bit operand: each lane's k-run is widened into a small
    /// Float buffer (in chunks of 64, as packPanel transposes) and then scattered into the panel.
    static func packWidening<E: RowElements>(_: E.Type, _ src: UnsafeRawPointer, ld: Int, lane0: Int, width: Int,
                                             p0: Int, kc: Int, panel: Int, into dest: UnsafeMutablePointer<Float>) {
        let chunk = 64
        withUnsafeTemporaryAllocation(of: Float.self, capacity: chunk) { buffer in
            let run = buffer.baseAddress!
            var c0 = 0
            while c0 < kc {
                let c1 = min(kc, c0 &+ chunk)
                for lane in 0..<panel {
                    var d = dest + (c0 &* panel &+ lane)
                    if lane < width {
                        E.widen(src + (lane0 &+ lane) &* ld &* E.byteSize, p0 &+ c0, c1 &- c0, run)
                        for p in 0..<(c1 &- c0) {
                            d[0] = run[p]
                            d += panel
                        }
                    } else {
                        for _ in c0..<c1 {
                            d[0] = 0
                            d += panel
                        }
                    }
                }
                c0 = c1
            }
        }
    }
}

// MARK: - Micro-kernel

enum GemmMicroKernel {
    /// C tile (6 × 16 at `c`, row stride `ldc`) = alpha · Σ_p a[p] ⊗ b[p]  (`loadC == false`)
    /// or C tile = fma(alpha, Σ_p a[p] ⊗ b[p], C tile)                    (`loadC == true`).
    ///
    /// The sum over p runs in order from zero with one fused multiply-add per step and lane,
    /// so an element's value depends only on its inputs, not on where the tile lies.
    @inline(__always)
    static func kernel6x16(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                           c: UnsafeMutablePointer<Float>, ldc: Int, alpha: Float, loadC: Bool) {
        var c00 = SIMD8<Float>(), c01 = SIMD8<Float>()
        var c10 = SIMD8<Float>(), c11 = SIMD8<Float>()
        var c20 = SIMD8<Float>(), c21 = SIMD8<Float>()
        var c30 = SIMD8<Float>(), c31 = SIMD8<Float>()
        var c40 = SIMD8<Float>(), c41 = SIMD8<Float>()
        var c50 = SIMD8<Float>(), c51 = SIMD8<Float>()
        var pa = a
        var pb = UnsafeRawPointer(b)
        var p = kc
        while p > 0 {
            let b0 = pb.load(as: SIMD8<Float>.self)
            let b1 = pb.load(fromByteOffset: 32, as: SIMD8<Float>.self)
            var t = SIMD8<Float>(repeating: pa[0])
            c00 = c00.addingProduct(t, b0); c01 = c01.addingProduct(t, b1)
            t = SIMD8<Float>(repeating: pa[1])
            c10 = c10.addingProduct(t, b0); c11 = c11.addingProduct(t, b1)
            t = SIMD8<Float>(repeating: pa[2])
            c20 = c20.addingProduct(t, b0); c21 = c21.addingProduct(t, b1)
            t = SIMD8<Float>(repeating: pa[3])
            c30 = c30.addingProduct(t, b0); c31 = c31.addingProduct(t, b1)
            t = SIMD8<Float>(repeating: pa[4])
            c40 = c40.addingProduct(t, b0); c41 = c41.addingProduct(t, b1)
            t = SIMD8<Float>(repeating: pa[5])
            c50 = c50.addingProduct(t, b0); c51 = c51.addingProduct(t, b1)
            pa += 6
            pb += 64
            p &-= 1
        }
        let row = UnsafeMutableRawPointer(c)
        let stride = ldc &* 4
        store(c00, c01, row, alpha, loadC)
        store(c10, c11, row + stride, alpha, loadC)
        store(c20, c21, row + 2 &* stride, alpha, loadC)
        store(c30, c31, row + 3 &* stride, alpha, loadC)
        store(c40, c41, row + 4 &* stride, alpha, loadC)
        store(c50, c51, row + 5 &* stride, alpha, loadC)
    }

    @inline(__always)
    private static func store(_ lo: SIMD8<Float>, _ hi: SIMD8<Float>, _ dst: UnsafeMutableRawPointer,
                              _ alpha: Float, _ loadC: Bool) {
        let scale = SIMD8<Float>(repeating: alpha)
        if loadC {
            let old0 = dst.loadUnaligned(as: SIMD8<Float>.self)
            let old1 = dst.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            dst.storeBytes(of: old0.addingProduct(scale, lo), as: SIMD8<Float>.self)
            dst.storeBytes(of: old1.addingProduct(scale, hi), toByteOffset: 32, as: SIMD8<Float>.self)
        } else {
            dst.storeBytes(of: scale * lo, as: SIMD8<Float>.self)
            dst.storeBytes(of: scale * hi, toByteOffset: 32, as: SIMD8<Float>.self)
        }
    }

    /// A partial tile (`rows` ≤ 6, `cols` ≤ 16): runs the full kernel into `scratch`
    /// (96 floats) and merges the valid part with the same per-element arithmetic as the
    /// full-tile path, so edge elements are bit-identical to interior ones.
    @inline(__always)
    static func edgeTile(kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                         c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, cols: Int,
                         alpha: Float, loadC: Bool, scratch: UnsafeMutablePointer<Float>) {
        kernel6x16(kc: kc, a: a, b: b, c: scratch, ldc: 16, alpha: 1, loadC: false)
        for r in 0..<rows {
            let dst = c + r &* ldc
            let src = scratch + r &* 16
            if loadC {
                for j in 0..<cols { dst[j] = dst[j].addingProduct(alpha, src[j]) }
            } else {
                for j in 0..<cols { dst[j] = alpha * src[j] }
            }
        }
    }
}
