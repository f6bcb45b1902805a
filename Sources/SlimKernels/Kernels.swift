import Dispatch
import Foundation

/// Fast single-precision CPU kernels for the LLaMA runtime and the quantizer.
///
/// Conventions shared by every kernel in this namespace:
/// - Matrices are row-major `Float` buffers addressed through raw pointers plus a leading
///   dimension (the distance, in elements, between the starts of consecutive rows), so callers
///   can pass memory-mapped weights without copying.
/// - Sizes and leading dimensions are programmer-supplied, not file data: a negative size or a
///   leading dimension smaller than the row length is a precondition failure.
/// - `threads` is an upper bound on the worker count; `threads <= 1` runs on the calling thread.
///   Small problems use fewer workers than requested because dispatch overhead would dominate.
/// - Results never depend on `threads`: work is split over *outputs* only and every output is
///   produced by the same sequence of floating-point operations whichever worker computes it,
///   so one and two threads give bit-identical results.
/// - Every fast kernel has a plain scalar counterpart in `Kernels.Reference` used by the tests.
public enum Kernels {
    /// The worker count used when a caller does not choose one: the active processor count.
    public static let defaultThreads: Int = max(1, ProcessInfo.processInfo.activeProcessorCount)
}

// MARK: - Work partitioning

extension Kernels {
    /// Runs `body(worker, item)` for every `item` in `0..<items` on up to `workers` threads.
    /// Items are handed out in increasing order from a shared counter, so a worker slowed by
    /// other load simply takes fewer of them; `worker` identifies the thread's private scratch.
    /// Returns when every item is done (`concurrentPerform` joins its iterations), which is the
    /// only synchronisation the kernels need: items write disjoint outputs.
    public static func parallelItems(workers: Int, items: Int, _ body: @Sendable (Int, Int) -> Void) {
        if workers <= 1 || items <= 1 {
            for item in 0..<items { body(0, item) }
            return
        }
        let counter = ItemCounter(total: items)
        DispatchQueue.concurrentPerform(iterations: min(workers, items)) { worker in
            while let item = counter.take() { body(worker, item) }
        }
    }

    /// Splits `0..<total` into `parts` contiguous ranges whose inner boundaries are multiples
    /// of `granule` (the last range absorbs the remainder). Returns fewer ranges when there
    /// are fewer granules than parts; never returns an empty range unless `total == 0`.
    public static func splitRange(_ total: Int, parts: Int, granule: Int) -> [Range<Int>] {
        if total <= 0 { return [0..<0] }
        let granules = (total + granule - 1) / granule
        let count = max(1, min(parts, granules))
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(count)
        var start = 0
        for index in 0..<count {
            // Distribute granules as evenly as possible: the first `granules % count` parts
            // get one more.
            let share = granules / count + (index < granules % count ? 1 : 0)
            let end = min(total, start + share * granule)
            ranges.append(start..<end)
            start = end
        }
        return ranges
    }

    /// The number of workers worth starting for `work` units when each worker should get at
    /// least `minimumPerWorker` of them, bounded by the caller's `threads` (at least 1).
    @inline(__always)
    public static func workerCount(threads: Int, work: Int, minimumPerWorker: Int) -> Int {
        guard threads > 1, minimumPerWorker > 0 else { return 1 }
        return max(1, min(threads, work / minimumPerWorker))
    }
}

/// A lock-protected "next item" counter (a handful of takes per call, so a lock is cheap and
/// keeps the module free of atomics dependencies).
final class ItemCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var next = 0
    private let total: Int

    init(total: Int) { self.total = total }

    func take() -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard next < total else { return nil }
        next += 1
        return next - 1
    }
}

// MARK: - Aligned scratch memory

/// A 64-byte aligned scratch buffer of `Float`s for one call. Sendable because the kernels
/// hand disjoint buffers (or read-only shared ones) to workers.
struct ScratchBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        self.count = max(count, 1)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: self.count * MemoryLayout<Float>.stride,
                                                   alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: self.count)
    }

    func deallocate() { UnsafeMutableRawPointer(pointer).deallocate() }
}
