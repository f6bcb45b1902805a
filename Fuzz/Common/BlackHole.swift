// Shared by every fuzz harness (compiled into each by scripts/fuzz.sh).

/// Keeps a value alive and observed, so the optimizer cannot drop the work that produced it.
@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }
