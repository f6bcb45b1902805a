import Dispatch
import Foundation
import SlimKernels

/// Causal grouped-query attention over a block of query rows, as HF's eager attention computes
/// it: scores `q·kᵀ` scaled by `1/√headDim` (after the product), softmax in fp32 over the
/// visible keys, then the weighted sum of values.
///
/// A prefill is split into (query head, tile of query rows) items, so memory is one
/// `tile × context` score block per worker rather than `[heads × T × T]`. Each item runs
/// single-threaded GEMMs; items are spread over workers by estimated cost. A decode step
/// (fewer than 4 rows) is split over chunks of cached positions instead, flash-decoding style,
/// which reads the cache in address order and parallelises however few heads there are.
public struct CausalAttention: Sendable {
    /// Query rows per work item in a prefill.
    static let tileRows = 64

    /// Head counts, width and HF's `scaling = head_dim ** -0.5`, applied to the fp32 scores.
    public let shape: AttentionHeads
    public var heads: Int { shape.heads }
    public var kvHeads: Int { shape.kvHeads }
    public var headDim: Int { shape.headDim }
    public var scale: Float { shape.scale }

    /// - Precondition: all positive, `heads` a multiple of `kvHeads`.
    public init(heads: Int, kvHeads: Int, headDim: Int) {
        shape = AttentionHeads(heads: heads, kvHeads: kvHeads, headDim: headDim,
                               scale: Float(Foundation.pow(Double(headDim), -0.5)))
    }

    /// Raw pointers shared with the worker closure (workers write disjoint output columns).
    private struct Operands: @unchecked Sendable {
        let q: UnsafePointer<Float>
        let keys: UnsafeRawPointer
        let values: UnsafeRawPointer
        let format: StorageFormat
        let out: UnsafeMutablePointer<Float>
    }

    /// Attention for `rows` query rows at positions `start ..< start + rows`.
    /// - Parameters:
    ///   - q: `[rows × heads·headDim]`, rotary already applied.
    ///   - keys, values: `[(start + rows) × kvHeads·headDim]` elements stored as `format`,
    ///     position p at row p (the cache, already holding this block's rotated keys and values).
    ///     16-bit elements are widened in registers (or while packing GEMM panels): scores,
    ///     softmax and sums stay fp32.
    ///   - out: `[rows × heads·headDim]`; head h's output goes to columns h·headDim ..< (h+1)·headDim.
    ///   - threads: upper bound on workers; the result does not depend on it.
    public func run(q: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer, format: StorageFormat,
                    out: UnsafeMutablePointer<Float>, rows: Int, start: Int, threads: Int) {
        guard rows > 0 else { return }
        let operands = Operands(q: q, keys: keys, values: values, format: format, out: out)
        if rows < Self.gemmMinimumRows {
            decode(operands, rows: rows, start: start, threads: threads)
            return
        }
        let tile = Self.tileRows
        let tiles = (rows + tile - 1) / tile
        // Items sorted by cost (keys visible to the tile's last row), longest first, then dealt
        // to the least-loaded worker: a simple longest-processing-time schedule.
        var items: [(head: Int, t0: Int, t1: Int)] = []
        items.reserveCapacity(tiles * heads)
        for t in stride(from: tiles - 1, through: 0, by: -1) {
            for h in 0..<heads { items.append((h, t * tile, min(rows, (t + 1) * tile))) }
        }
        let workers = max(1, min(threads, items.count))
        var assignment = [[Int]](repeating: [], count: workers)
        var load = [Int](repeating: 0, count: workers)
        for (index, item) in items.enumerated() {
            let w = load.indices.min { load[$0] < load[$1] } ?? 0
            assignment[w].append(index)
            load[w] += (item.t1 - item.t0) * (start + item.t1)
        }
        let scratchCount = tile * (start + rows)
        let body = { (worker: Int) in
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: scratchCount)
            defer { scores.deallocate() }
            for index in assignment[worker] {
                let item = items[index]
                self.item(operands, head: item.head, t0: item.t0, t1: item.t1, start: start, scores: scores)
            }
        }
        if workers == 1 {
            body(0)
        } else {
            DispatchQueue.concurrentPerform(iterations: workers, execute: body)
        }
    }

    /// One head over query rows `t0 ..< t1` of a prefill: a tile of scores, softmax, values.
    private func item(_ o: Operands, head: Int, t0: Int, t1: Int, start: Int, scores: UnsafeMutablePointer<Float>) {
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        let group = head / (heads / kvHeads)
        let m = t1 - t0
        let offset = group * headDim * o.format.byteSize
        let keys = o.keys + offset, values = o.values + offset
        let context = start + t1
        Kernels.gemmNT(m: m, n: context, k: headDim,
                       a: o.q + t0 * qDim + head * headDim, lda: qDim,
                       b: keys, bFormat: o.format, ldb: kvDim,
                       c: scores, ldc: context, threads: 1)
        for r in 0..<m {
            let row = scores + r * context
            let visible = start + t0 + r + 1
            Kernels.scale(row, by: scale, count: visible)
            Kernels.softmax(row, count: visible)
            // Keys after the query's position are masked: exactly zero weight.
            if visible < context { (row + visible).update(repeating: 0, count: context - visible) }
        }
        Kernels.gemmNN(m: m, n: headDim, k: context,
                       a: scores, lda: context,
                       b: values, bFormat: o.format, ldb: kvDim,
                       c: o.out + t0 * qDim + head * headDim, ldc: qDim, threads: 1)
    }

    /// Blocks with fewer query rows than this (decode steps) take the chunked per-row path: a
    /// GEMM would pad them to a full micro-tile and pack the values for nothing.
    static let gemmMinimumRows = 4

    /// Decode rows: each row's visible positions are cut into chunks
    /// (`Kernels.attentionChunkLength`, a function of the row's position count only), chunks of
    /// all rows run in parallel over every head (`Kernels.attentionChunk`), and each row's
    /// chunks are combined in order. The result does not depend on `threads`.
    private func decode(_ o: Operands, rows: Int, start: Int, threads: Int) {
        var chunks: [(row: Int, positions: Range<Int>)] = []
        var firstChunk: [Int] = []
        var longest = 0
        for t in 0..<rows {
            let visible = start + t + 1
            let length = Kernels.attentionChunkLength(positions: visible)
            longest = max(longest, min(length, visible))
            firstChunk.append(chunks.count)
            for p in stride(from: 0, to: visible, by: length) { chunks.append((t, p..<min(visible, p + length))) }
        }
        firstChunk.append(chunks.count)
        let work = chunks
        let qDim = heads * headDim
        let kvDim = kvHeads * headDim
        // Another worker only for 32 Ki cached elements (128 KiB of fp32 keys and values) each:
        // below that a dispatch costs more than it saves.
        let workers = Kernels.workerCount(threads: threads, work: (start + rows) * kvDim * 2, minimumPerWorker: 1 << 15)
        let partials = Partials(heads: heads, headDim: headDim, chunks: chunks.count, workers: max(1, workers),
                                scoresPerWorker: heads * longest)
        defer { partials.deallocate() }
        Kernels.parallelItems(workers: workers, items: chunks.count) { worker, index in
            let chunk = work[index]
            Kernels.attentionChunk(q: o.q + chunk.row * qDim, heads: shape, keys: o.keys, values: o.values,
                                   format: o.format, positions: chunk.positions,
                                   scores: partials.scores + worker * partials.scoresPerWorker,
                                   maxima: partials.maxima + index * heads, sums: partials.sums + index * heads,
                                   weighted: partials.weighted + index * qDim)
        }
        for t in 0..<rows {
            let c0 = firstChunk[t]
            Kernels.combineAttentionChunks(chunks: firstChunk[t + 1] - c0, heads: heads, headDim: headDim,
                                           maxima: partials.maxima + c0 * heads, sums: partials.sums + c0 * heads,
                                           weighted: partials.weighted + c0 * qDim, out: o.out + t * qDim)
        }
    }

    /// Per-chunk results and per-worker score scratch of one decode call.
    private struct Partials: @unchecked Sendable {
        let maxima: UnsafeMutablePointer<Float>
        let sums: UnsafeMutablePointer<Float>
        let weighted: UnsafeMutablePointer<Float>
        let scores: UnsafeMutablePointer<Float>
        let scoresPerWorker: Int

        init(heads: Int, headDim: Int, chunks: Int, workers: Int, scoresPerWorker: Int) {
            maxima = .allocate(capacity: chunks * heads)
            sums = .allocate(capacity: chunks * heads)
            weighted = .allocate(capacity: chunks * heads * headDim)
            scores = .allocate(capacity: workers * scoresPerWorker)
            self.scoresPerWorker = scoresPerWorker
        }

        func deallocate() {
            for p in [maxima, sums, weighted, scores] { p.deallocate() }
        }
    }
}
