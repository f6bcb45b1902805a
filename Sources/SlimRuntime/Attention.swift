import Dispatch
import Foundation
import SlimKernels

/// Causal grouped-query attention over a block of query rows, as HF's eager attention computes
/// it: scores `q·kᵀ` scaled by `1/√headDim` (after the product), softmax in fp32 over the
/// visible keys, then the weighted sum of values.
///
/// Work is split into (query head, tile of query rows) items, so memory is one
/// `tile × context` score block per worker rather than `[heads × T × T]`. Each item runs
/// single-threaded GEMMs; items are spread over workers by estimated cost.
public struct CausalAttention: Sendable {
    /// Query rows per work item in a prefill.
    static let tileRows = 64

    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    /// HF `scaling = head_dim ** -0.5`, applied to the fp32 scores.
    public let scale: Float

    /// - Precondition: all positive, `heads` a multiple of `kvHeads`.
    public init(heads: Int, kvHeads: Int, headDim: Int) {
        precondition(heads > 0 && kvHeads > 0 && headDim > 0 && heads % kvHeads == 0,
                     "CausalAttention: \(heads) heads, \(kvHeads) KV heads, head_dim \(headDim)")
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        scale = Float(Foundation.pow(Double(headDim), -0.5))
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
        let tile = rows < Self.gemmMinimumRows ? rows : Self.tileRows
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
        let operands = Operands(q: q, keys: keys, values: values, format: format, out: out)
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

    /// One head over query rows `t0 ..< t1`.
    private func item(_ o: Operands, head: Int, t0: Int, t1: Int, start: Int, scores: UnsafeMutablePointer<Float>) {
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        let group = head / (heads / kvHeads)
        let m = t1 - t0
        let offset = group * headDim * o.format.byteSize
        let keys = o.keys + offset, values = o.values + offset
        if m < Self.gemmMinimumRows {
            // Decode steps: GEMV for the scores and a streaming weighted sum of the values
            // (a GEMM would pad the single row to a full micro-tile and pack V for nothing).
            for t in t0..<t1 {
                let visible = start + t + 1
                Kernels.gemv(m: visible, k: headDim, a: keys, format: o.format, lda: kvDim,
                             x: o.q + t * qDim + head * headDim, y: scores, threads: 1)
                Kernels.scale(scores, by: scale, count: visible)
                Kernels.softmax(scores, count: visible)
                Kernels.weightedRowSum(scores, count: visible, rows: values, format: o.format, ld: kvDim,
                                       width: headDim, out: o.out + t * qDim + head * headDim)
            }
            return
        }
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

    /// Tiles with fewer query rows than this take the per-row path.
    static let gemmMinimumRows = 4
}
