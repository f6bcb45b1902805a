// The blocked GEMM driver (Goto/BLIS loop nest) shared by sgemmNT, sgemmNN, sgemmTN and the
// symmetric rank-k update.
//
// Threading: for each (column block, k-block) the packed B block is built once and shared;
// then workers take (row block × column chunk) items from a shared counter, pack their A
// block privately and run the micro-tiles. Taking items dynamically keeps both cores busy
// when one of them is slowed by another process (or on asymmetric cores), and nothing is
// packed twice. Every C element is still produced by the same operations whichever worker
// takes its item, so results do not depend on the thread count.
/// One GEMM call: C[m×n] = alpha · op(A)[m×k] · op(B)[k×n], added to C when `accumulate`.
struct GemmProblem {
    var m: Int
    var n: Int
    var k: Int
    var a: UnsafePointer<Float>
    var lda: Int
    var aLayout: OperandLayout
    /// fp32, or `bFormat` elements, widened while packing.
    var b: UnsafeRawPointer
    var ldb: Int
    var bLayout: OperandLayout
    var c: UnsafeMutablePointer<Float>
    var ldc: Int
    var alpha: Float
    var accumulate: Bool
    /// Only tiles touching the upper triangle (row ≤ column) are computed (syrk). Tiles that
    /// straddle the diagonal are written whole; entries below the diagonal are unspecified.
    var upperOnly: Bool
    var bFormat: StorageFormat = .f32
}

/// `GemmProblem` holds raw pointers; workers only read A/B and write disjoint parts of C.
extension GemmProblem: @unchecked Sendable {}

enum GemmDriver {
    /// Target number of work items per worker and k-block: enough for dynamic balancing,
    /// few enough that per-item overheads (a lock, an A-block pack) stay negligible.
    static let itemsPerWorker = 4

    static func run(_ problem: GemmProblem, threads: Int, blocking: GemmBlocking = .standard) {
        let m = problem.m, n = problem.n, k = problem.k
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // The product is empty: C = 0, or C unchanged when accumulating.
            if !problem.accumulate {
                for i in 0..<m { (problem.c + i &* problem.ldc).update(repeating: 0, count: n) }
            }
            return
        }
        let flops = 2.0 * Double(m) * Double(n) * Double(k) / (problem.upperOnly ? 2 : 1)
        let workers = max(1, min(threads, Int(flops / Double(max(1, blocking.minimumFlopsPerWorker)))))
        let mr = GemmBlocking.mr, nr = GemmBlocking.nr
        let kBlocks = blocking.kBlocks(k)
        let kcMax = kBlocks.reduce(0) { max($0, $1.count) }
        let mcMax = min(max(mr, blocking.mcMax / mr * mr), (m + mr - 1) / mr * mr)
        let ncMax = min(blocking.ncMax(kc: kcMax), (n + nr - 1) / nr * nr)

        let packedB = ScratchBuffer(count: ncMax * kcMax)
        let packedA = (0..<workers).map { _ in ScratchBuffer(count: mcMax * kcMax) }
        let edges = (0..<workers).map { _ in ScratchBuffer(count: mr * nr) }
        defer {
            packedB.deallocate()
            packedA.forEach { $0.deallocate() }
            edges.forEach { $0.deallocate() }
        }

        for jc in stride(from: 0, to: n, by: ncMax) {
            let nc = min(ncMax, n - jc)
            let panels = (nc + nr - 1) / nr
            // Rows below this column block's last column hold no upper-triangle entry.
            let rowEnd = problem.upperOnly ? min(m, jc + nc) : m
            let rowBlocks = (rowEnd + mcMax - 1) / mcMax
            // Few row blocks (small m): also split the columns so every worker gets items.
            let columnChunks = min(panels, max(1, (itemsPerWorker * workers + rowBlocks - 1) / rowBlocks))
            let panelsPerChunk = (panels + columnChunks - 1) / columnChunks
            let chunks = (panels + panelsPerChunk - 1) / panelsPerChunk
            for (blockIndex, block) in kBlocks.enumerated() {
                let loadC = problem.accumulate || blockIndex > 0
                let kc = block.count
                // Phase 1: pack the shared B block, a few micro-panels per item.
                let packItems = (panels + 7) / 8
                Kernels.parallelItems(workers: min(workers, packItems), items: packItems) { _, item in
                    let first = item * 8
                    let count = min(8, panels - first) * nr
                    GemmPacking.packBlock(problem.b, format: problem.bFormat, ld: problem.ldb, layout: problem.bLayout,
                                          lane0: jc + first * nr, count: min(count, nc - first * nr),
                                          p0: block.start, kc: kc, panel: nr,
                                          into: packedB.pointer + first * nr * kc)
                }
                // Phase 2: row block × column chunk items, row-major so that in the triangular
                // case the longest rows are taken first.
                Kernels.parallelItems(workers: min(workers, rowBlocks * chunks), items: rowBlocks * chunks) { worker, item in
                    let ic = (item / chunks) * mcMax
                    let mc = min(mcMax, rowEnd - ic)
                    let firstPanel = (item % chunks) * panelsPerChunk
                    let jr = firstPanel * nr
                    let width = min(panelsPerChunk * nr, nc - jr)
                    // Triangular case: a chunk entirely left of this row block's diagonal.
                    if problem.upperOnly && ic > jc + jr + width - 1 { return }
                    GemmPacking.packBlock(problem.a, format: .f32, ld: problem.lda, layout: problem.aLayout,
                                          lane0: ic, count: mc, p0: block.start, kc: kc,
                                          panel: mr, into: packedA[worker].pointer)
                    macroKernel(problem, ic: ic, mc: mc, jc: jc + jr, nc: width, kc: kc,
                                packedA: packedA[worker].pointer, packedB: packedB.pointer + jr * kc,
                                loadC: loadC, scratch: edges[worker].pointer)
                }
            }
        }
    }

    /// All micro-tiles of one (mc × nc) block. The B micro-panel is the outer loop so it stays
    /// cached (L1 for short k-blocks, L2 for long ones) while the A micro-panels stream by.
    @inline(__always)
    static func macroKernel(_ problem: GemmProblem, ic: Int, mc: Int, jc: Int, nc: Int, kc: Int,
                            packedA: UnsafeMutablePointer<Float>, packedB: UnsafeMutablePointer<Float>,
                            loadC: Bool, scratch: UnsafeMutablePointer<Float>) {
        let mr = GemmBlocking.mr, nr = GemmBlocking.nr
        let ldc = problem.ldc, alpha = problem.alpha
        var jr = 0
        while jr < nc {
            let cols = min(nr, nc - jr)
            let bPanel = packedB + (jr / nr) &* (nr &* kc)
            let j0 = jc + jr
            var ir = 0
            while ir < mc {
                let i0 = ic + ir
                // Upper-triangle mode: skip tiles entirely below the diagonal.
                if problem.upperOnly && i0 > j0 + cols - 1 { break }
                let rowsHere = min(mr, mc - ir)
                let aPanel = packedA + (ir / mr) &* (mr &* kc)
                let cTile = problem.c + (i0 &* ldc &+ j0)
                if rowsHere == mr && cols == nr {
                    GemmMicroKernel.kernel6x16(kc: kc, a: aPanel, b: bPanel, c: cTile, ldc: ldc,
                                               alpha: alpha, loadC: loadC)
                } else {
                    GemmMicroKernel.edgeTile(kc: kc, a: aPanel, b: bPanel, c: cTile, ldc: ldc,
                                             rows: rowsHere, cols: cols, alpha: alpha, loadC: loadC,
                                             scratch: scratch)
                }
                ir += mr
            }
            jr += nr
        }
    }
}
