// The blocked GEMM driver (Goto/BLIS loop nest) shared by sgemmNT, sgemmNN, sgemmTN and the
// symmetric rank-k update. Threads split C into disjoint rectangles; each worker runs the
// whole single-threaded loop nest on its rectangle with private packing buffers, so there is
// no barrier inside a call and the arithmetic per element is independent of the split.

/// One GEMM call: C[m×n] = alpha · op(A)[m×k] · op(B)[k×n], added to C when `accumulate`.
struct GemmProblem {
    var m: Int
    var n: Int
    var k: Int
    var a: UnsafePointer<Float>
    var lda: Int
    var aLayout: OperandLayout
    var b: UnsafePointer<Float>
    var ldb: Int
    var bLayout: OperandLayout
    var c: UnsafeMutablePointer<Float>
    var ldc: Int
    var alpha: Float
    var accumulate: Bool
    /// Only tiles touching the upper triangle (row ≤ column) are computed (syrk). Tiles that
    /// straddle the diagonal are written whole; entries below the diagonal are unspecified.
    var upperOnly: Bool
}

/// `GemmProblem` holds raw pointers; workers only read A/B and write disjoint parts of C.
extension GemmProblem: @unchecked Sendable {}

enum GemmDriver {
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
        let regions = partition(problem, workers: workers)
        let kBlocks = blocking.kBlocks(k)
        Kernels.parallelFor(regions.count) { index in
            let region = regions[index]
            runRegion(problem, rows: region.rows, cols: region.cols, kBlocks: kBlocks, blocking: blocking)
        }
    }

    // MARK: Partitioning

    /// Splits C into at most `workers` rectangles. The grid tm × tn (tm · tn = workers) that
    /// re-packs the least data is chosen: splitting columns makes every worker pack all of A,
    /// splitting rows makes every worker pack all of B. For the upper-triangular update the
    /// columns are split into bands of equal triangle area instead.
    static func partition(_ problem: GemmProblem, workers: Int) -> [(rows: Range<Int>, cols: Range<Int>)] {
        let m = problem.m, n = problem.n
        if workers <= 1 { return [(0..<m, 0..<n)] }
        if problem.upperOnly {
            // Column band [j0, j1) costs ∝ j1² − j0²: cut at n·sqrt(t / workers).
            var cuts = [0]
            for t in 1..<workers {
                let ideal = Double(n) * (Double(t) / Double(workers)).squareRoot()
                let cut = min(n, (Int(ideal.rounded()) + GemmBlocking.nr / 2) / GemmBlocking.nr * GemmBlocking.nr)
                if cut > cuts[cuts.count - 1] { cuts.append(cut) }
            }
            if cuts[cuts.count - 1] < n { cuts.append(n) }
            var regions: [(rows: Range<Int>, cols: Range<Int>)] = []
            for index in 0..<(cuts.count - 1) where cuts[index] < cuts[index + 1] {
                regions.append((0..<min(m, cuts[index + 1]), cuts[index]..<cuts[index + 1]))
            }
            return regions
        }
        var best = (tm: workers, tn: 1)
        var bestCost = Double.infinity
        for tm in 1...workers where workers % tm == 0 {
            let tn = workers / tm
            // Grids with more parts than micro-tiles would leave workers idle.
            if tm > (m + GemmBlocking.mr - 1) / GemmBlocking.mr { continue }
            if tn > (n + GemmBlocking.nr - 1) / GemmBlocking.nr { continue }
            let cost = Double(tn - 1) * Double(m) + Double(tm - 1) * Double(n)
            if cost < bestCost {
                bestCost = cost
                best = (tm, tn)
            }
        }
        let rowRanges = Kernels.splitRange(m, parts: best.tm, granule: GemmBlocking.mr)
        let colRanges = Kernels.splitRange(n, parts: best.tn, granule: GemmBlocking.nr)
        var regions: [(rows: Range<Int>, cols: Range<Int>)] = []
        for rows in rowRanges {
            for cols in colRanges { regions.append((rows, cols)) }
        }
        return regions
    }

    // MARK: Loop nest

    /// The single-threaded blocked product for C[rows, cols].
    static func runRegion(_ problem: GemmProblem, rows: Range<Int>, cols: Range<Int>,
                          kBlocks: [(start: Int, count: Int)], blocking: GemmBlocking) {
        let mr = GemmBlocking.mr, nr = GemmBlocking.nr
        guard !rows.isEmpty, !cols.isEmpty else { return }
        let kcMax = kBlocks.reduce(0) { max($0, $1.count) }
        let mcMax = min(max(mr, blocking.mcMax / mr * mr), (rows.count + mr - 1) / mr * mr)
        let ncMax = min(blocking.ncMax(kc: kcMax), (cols.count + nr - 1) / nr * nr)
        let packedA = ScratchBuffer(count: mcMax * kcMax)
        let packedB = ScratchBuffer(count: ncMax * kcMax)
        let edge = ScratchBuffer(count: mr * nr)
        defer {
            packedA.deallocate()
            packedB.deallocate()
            edge.deallocate()
        }

        var jc = cols.lowerBound
        while jc < cols.upperBound {
            let nc = min(ncMax, cols.upperBound - jc)
            // Rows below this column block's last column hold no upper-triangle entry.
            let rowEnd = problem.upperOnly ? min(rows.upperBound, jc + nc) : rows.upperBound
            for (blockIndex, block) in kBlocks.enumerated() {
                let loadC = problem.accumulate || blockIndex > 0
                GemmPacking.packBlock(problem.b, ld: problem.ldb, layout: problem.bLayout,
                                      lane0: jc, count: nc, p0: block.start, kc: block.count,
                                      panel: nr, into: packedB.pointer)
                var ic = rows.lowerBound
                while ic < rowEnd {
                    let mc = min(mcMax, rowEnd - ic)
                    GemmPacking.packBlock(problem.a, ld: problem.lda, layout: problem.aLayout,
                                          lane0: ic, count: mc, p0: block.start, kc: block.count,
                                          panel: mr, into: packedA.pointer)
                    macroKernel(problem, ic: ic, mc: mc, jc: jc, nc: nc, kc: block.count,
                                packedA: packedA.pointer, packedB: packedB.pointer,
                                loadC: loadC, scratch: edge.pointer)
                    ic += mc
                }
            }
            jc += nc
        }
    }

    /// All micro-tiles of one (mc × nc) block. The B micro-panel is the outer loop so it stays
    /// in L1 while the A micro-panels stream from L2.
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
