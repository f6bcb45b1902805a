// Decode attention (one query row against the KV cache) split over chunks of cached positions,
// as flash-decoding splits it: each chunk yields, per query head, its score maximum m, the sum
// l = Σ e^{s−m} and the unnormalised o = Σ e^{s−m}·v; `combineAttentionChunks` rescales the
// chunks to a common maximum, which is exact softmax arithmetic. Chunks are independent, so a
// step parallelises over positions as well as heads, and every chunk walks its keys and values
// in address order (all heads of 8 positions at a time) instead of one head's strided column.

/// The head geometry of a grouped-query attention: `heads` query heads share `kvHeads` key/value
/// heads in consecutive groups of `heads / kvHeads`.
public struct AttentionHeads: Sendable, Equatable {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Applied to q·k after the product (HF's `scaling`).
    public let scale: Float

    /// - Precondition: all positive, `heads` a multiple of `kvHeads`.
    public init(heads: Int, kvHeads: Int, headDim: Int, scale: Float) {
        precondition(heads > 0 && kvHeads > 0 && headDim > 0 && heads % kvHeads == 0,
                     "AttentionHeads: \(heads) heads, \(kvHeads) KV heads, head_dim \(headDim)")
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.scale = scale
    }

    var group: Int { heads / kvHeads }
    var kvDim: Int { kvHeads * headDim }
}

extension Kernels {
    /// Positions per chunk for a decode step over `positions` cached keys: about a sixteenth of
    /// them, a multiple of 8, within 64 … 256. A function of `positions` only, so the split (and
    /// the result) does not depend on the number of threads.
    public static func attentionChunkLength(positions: Int) -> Int {
        let sixteenth = (positions + 15) / 16
        return min(256, max(64, (sixteenth + 7) / 8 * 8))
    }

    /// One query row against cached positions `positions` of every head.
    ///
    /// - Parameters:
    ///   - q: `heads · headDim` floats, query head h at `h · headDim`.
    ///   - keys, values: position p, KV head g at element `p · kvDim + g · headDim`, stored as
    ///     `format` (any alignment).
    ///   - scores: scratch of `heads · positions.count` floats.
    ///   - maxima, sums: `heads` floats each: m and l per query head.
    ///   - weighted: `heads · headDim` floats: o per query head (not normalised).
    /// - Result: scores are (q·k)·scale in Float (8 fused partial sums per dot, reduced in a
    ///   fixed order); o adds the weighted values of each 8-position block in two fused chains
    ///   (even and odd positions) onto the running sum. Every format runs the same Float
    ///   operations on the widened elements, so a 16-bit cache gives bit for bit the result of
    ///   its fp32 widening. An empty range gives m = −∞,
    ///   l = 0, o = 0. NaN in a score makes that head's m, l or o NaN.
    public static func attentionChunk(q: UnsafePointer<Float>, heads shape: AttentionHeads,
                                      keys: UnsafeRawPointer, values: UnsafeRawPointer, format: StorageFormat,
                                      positions: Range<Int>, scores: UnsafeMutablePointer<Float>,
                                      maxima: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>,
                                      weighted: UnsafeMutablePointer<Float>) {
        precondition(positions.lowerBound >= 0, "attentionChunk: negative position \(positions)")
        switch format {
        case .f32: DecodeAttention.chunk(F32Rows.self, q, shape, keys, values, positions, scores, maxima, sums, weighted)
        case .f16: DecodeAttention.chunk(F16Rows.self, q, shape, keys, values, positions, scores, maxima, sums, weighted)
        case .bf16: DecodeAttention.chunk(BF16Rows.self, q, shape, keys, values, positions, scores, maxima, sums, weighted)
        }
    }

    /// out[h] = Σ_c e^{m_c−M}·o_c / Σ_c e^{m_c−M}·l_c with M = max_c m_c, per query head h, over
    /// `chunks` results of `attentionChunk` stored chunk after chunk (`maxima`/`sums` `[chunks ×
    /// heads]`, `weighted` `[chunks × heads × headDim]`); `out` is `heads · headDim` floats.
    /// - Result: chunks are added in order; one chunk gives o / l. A NaN anywhere in a head's
    ///   chunks makes its output NaN.
    public static func combineAttentionChunks(chunks: Int, heads: Int, headDim: Int, maxima: UnsafePointer<Float>,
                                              sums: UnsafePointer<Float>, weighted: UnsafePointer<Float>,
                                              out: UnsafeMutablePointer<Float>) {
        precondition(chunks > 0 && heads > 0 && headDim > 0, "combineAttentionChunks: \(chunks) chunks, \(heads) heads")
        let factors = UnsafeMutablePointer<Float>.allocate(capacity: chunks)
        defer { factors.deallocate() }
        for h in 0..<heads {
            var top = -Float.infinity
            var nan = false
            for c in 0..<chunks {
                let m = maxima[c &* heads &+ h]
                if m.isNaN { nan = true } else if m > top { top = m }
            }
            var total: Float = 0
            for c in 0..<chunks {
                let m = maxima[c &* heads &+ h]
                // An empty chunk (m = −∞, l = o = 0) weighs 0 rather than e^{−∞−(−∞)} = NaN.
                let f = nan ? Float.nan : (m == -.infinity ? 0 : VectorMath.exp(SIMD8(repeating: m - top))[0])
                factors[c] = f
                total = total.addingProduct(f, sums[c &* heads &+ h])
            }
            let destination = out + h &* headDim
            destination.update(repeating: 0, count: headDim)
            for c in 0..<chunks {
                Kernels.axpy(alpha: factors[c], x: weighted + (c &* heads &+ h) &* headDim, y: destination, count: headDim)
            }
            Kernels.scale(destination, by: 1 / total, count: headDim)
        }
    }
}

// MARK: - Kernel

enum DecodeAttention {
    @inline(__always)
    static func chunk<E: RowElements>(_: E.Type, _ q: UnsafePointer<Float>, _ shape: AttentionHeads,
                                      _ keys: UnsafeRawPointer, _ values: UnsafeRawPointer, _ positions: Range<Int>,
                                      _ scores: UnsafeMutablePointer<Float>, _ maxima: UnsafeMutablePointer<Float>,
                                      _ sums: UnsafeMutablePointer<Float>, _ weighted: UnsafeMutablePointer<Float>) {
        let d = shape.headDim, group = shape.group, count = positions.count
        let rowBytes = shape.kvDim &* E.byteSize, headBytes = d &* E.byteSize
        weighted.update(repeating: 0, count: shape.heads &* d)
        guard count > 0 else {
            maxima.update(repeating: -.infinity, count: shape.heads)
            sums.update(repeating: 0, count: shape.heads)
            return
        }
        // Scores, 8 positions at a time: their rows of every head are one contiguous stretch.
        let first = keys + positions.lowerBound &* rowBytes
        let firstValue = values + positions.lowerBound &* rowBytes
        var j = 0
        while j < count {
            let valid = min(8, count &- j)
            let block = first + j &* rowBytes
            for g in 0..<shape.kvHeads {
                let rows = block + g &* headBytes
                for member in 0..<group {
                    let h = g &* group &+ member
                    let s = dots8(E.self, rows, rowBytes, valid, q + h &* d, d) * SIMD8(repeating: shape.scale)
                    let destination = scores + (h &* count &+ j)
                    if valid == 8 {
                        UnsafeMutableRawPointer(destination).storeBytes(of: s, as: SIMD8<Float>.self)
                    } else {
                        VectorMath.storePartial(s, destination, valid)
                    }
                }
            }
            j &+= 8
        }
        // e^{s−m} in place, m and l per head.
        for h in 0..<shape.heads {
            let (m, l) = VectorMath.expShifted(scores + h &* count, count: count)
            maxima[h] = m
            sums[h] = horizontalSum(l)
        }
        // o += e·v, 8 positions at a time, every head, in address order.
        j = 0
        while j < count {
            let valid = min(8, count &- j)
            let block = firstValue + j &* rowBytes
            for g in 0..<shape.kvHeads {
                let rows = block + g &* headBytes
                for member in 0..<group {
                    let h = g &* group &+ member
                    values8(E.self, scores + (h &* count &+ j), valid, rows, rowBytes, d, weighted + h &* d)
                }
            }
            j &+= 8
        }
    }

    /// Dot products of `x` with 8 rows (`valid` ≤ 8 of them real: the rest repeat the last, and
    /// their lanes are ignored) of `d` elements: one 8-lane accumulator per row, reduced by a
    /// fixed transpose-and-add tree, then a scalar tail for d mod 8.
    @inline(__always)
    static func dots8<E: RowElements>(_: E.Type, _ rows: UnsafeRawPointer, _ stride: Int, _ valid: Int,
                                      _ x: UnsafePointer<Float>, _ d: Int) -> SIMD8<Float> {
        let last = valid &- 1
        let r0 = rows
        let r1 = rows + min(1, last) &* stride, r2 = rows + min(2, last) &* stride
        let r3 = rows + min(3, last) &* stride, r4 = rows + min(4, last) &* stride
        let r5 = rows + min(5, last) &* stride, r6 = rows + min(6, last) &* stride
        let r7 = rows + min(7, last) &* stride
        var a0 = SIMD8<Float>(), a1 = SIMD8<Float>(), a2 = SIMD8<Float>(), a3 = SIMD8<Float>()
        var a4 = SIMD8<Float>(), a5 = SIMD8<Float>(), a6 = SIMD8<Float>(), a7 = SIMD8<Float>()
        let px = UnsafeRawPointer(x)
        let vectorEnd = d & ~7
        var c = 0
        while c < vectorEnd {
            let xc = px.loadUnaligned(fromByteOffset: c &* 4, as: SIMD8<Float>.self)
            a0 = a0.addingProduct(E.load8(r0, c), xc)
            a1 = a1.addingProduct(E.load8(r1, c), xc)
            a2 = a2.addingProduct(E.load8(r2, c), xc)
            a3 = a3.addingProduct(E.load8(r3, c), xc)
            a4 = a4.addingProduct(E.load8(r4, c), xc)
            a5 = a5.addingProduct(E.load8(r5, c), xc)
            a6 = a6.addingProduct(E.load8(r6, c), xc)
            a7 = a7.addingProduct(E.load8(r7, c), xc)
            c &+= 8
        }
        var s = SIMD8<Float>(lowHalf: reduce4(a0, a1, a2, a3), highHalf: reduce4(a4, a5, a6, a7))
        while c < d {
            let row = SIMD8<Float>(E.load(r0, c), E.load(r1, c), E.load(r2, c), E.load(r3, c),
                                   E.load(r4, c), E.load(r5, c), E.load(r6, c), E.load(r7, c))
            s = s.addingProduct(row, SIMD8(repeating: x[c]))
            c &+= 1
        }
        return s
    }

    /// out[c] += Σ_r p[r]·rows[r][c] over `valid` ≤ 8 rows: 32 columns at a time, even and odd
    /// rows in separate accumulators (eight independent chains keep both FMA pipes busy), added
    /// at the end; then 8 columns, then single ones, in row order.
    @inline(__always)
    static func values8<E: RowElements>(_: E.Type, _ p: UnsafePointer<Float>, _ valid: Int, _ rows: UnsafeRawPointer,
                                        _ stride: Int, _ d: Int, _ out: UnsafeMutablePointer<Float>) {
        let o = UnsafeMutableRawPointer(out)
        let pairs = valid & ~1
        var c = 0
        while c &+ 32 <= d {
            var a0 = o.loadUnaligned(fromByteOffset: c &* 4, as: SIMD8<Float>.self)
            var a1 = o.loadUnaligned(fromByteOffset: c &* 4 &+ 32, as: SIMD8<Float>.self)
            var a2 = o.loadUnaligned(fromByteOffset: c &* 4 &+ 64, as: SIMD8<Float>.self)
            var a3 = o.loadUnaligned(fromByteOffset: c &* 4 &+ 96, as: SIMD8<Float>.self)
            var b0 = SIMD8<Float>(), b1 = SIMD8<Float>(), b2 = SIMD8<Float>(), b3 = SIMD8<Float>()
            var r = 0
            while r < pairs {
                let even = rows + r &* stride, odd = even + stride
                let we = SIMD8<Float>(repeating: p[r]), wo = SIMD8<Float>(repeating: p[r &+ 1])
                a0 = a0.addingProduct(E.load8(even, c), we)
                a1 = a1.addingProduct(E.load8(even, c &+ 8), we)
                a2 = a2.addingProduct(E.load8(even, c &+ 16), we)
                a3 = a3.addingProduct(E.load8(even, c &+ 24), we)
                b0 = b0.addingProduct(E.load8(odd, c), wo)
                b1 = b1.addingProduct(E.load8(odd, c &+ 8), wo)
                b2 = b2.addingProduct(E.load8(odd, c &+ 16), wo)
                b3 = b3.addingProduct(E.load8(odd, c &+ 24), wo)
                r &+= 2
            }
            if r < valid {
                let row = rows + r &* stride
                let w = SIMD8<Float>(repeating: p[r])
                a0 = a0.addingProduct(E.load8(row, c), w)
                a1 = a1.addingProduct(E.load8(row, c &+ 8), w)
                a2 = a2.addingProduct(E.load8(row, c &+ 16), w)
                a3 = a3.addingProduct(E.load8(row, c &+ 24), w)
            }
            o.storeBytes(of: a0 + b0, toByteOffset: c &* 4, as: SIMD8<Float>.self)
            o.storeBytes(of: a1 + b1, toByteOffset: c &* 4 &+ 32, as: SIMD8<Float>.self)
            o.storeBytes(of: a2 + b2, toByteOffset: c &* 4 &+ 64, as: SIMD8<Float>.self)
            o.storeBytes(of: a3 + b3, toByteOffset: c &* 4 &+ 96, as: SIMD8<Float>.self)
            c &+= 32
        }
        if c < d { WeightedRowSum.tail(E.self, p, valid, rows, stride, c, d, out) }
    }

    /// Lane sums of four vectors: adjacent pairs, then pairs of pairs, then the two halves.
    @inline(__always)
    static func reduce4(_ a: SIMD8<Float>, _ b: SIMD8<Float>, _ c: SIMD8<Float>, _ d: SIMD8<Float>) -> SIMD4<Float> {
        let ab = SIMD8<Float>(lowHalf: a.evenHalf + a.oddHalf, highHalf: b.evenHalf + b.oddHalf)
        let cd = SIMD8<Float>(lowHalf: c.evenHalf + c.oddHalf, highHalf: d.evenHalf + d.oddHalf)
        let abcd = SIMD8<Float>(lowHalf: ab.evenHalf + ab.oddHalf, highHalf: cd.evenHalf + cd.oddHalf)
        return abcd.evenHalf + abcd.oddHalf
    }
}
