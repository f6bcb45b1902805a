import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// SIGBUS from a truncated memory map. When another process truncates a file we have mapped,
// touching a page past the new end raises SIGBUS; no size check made beforehand can rule that
// out (the truncation may happen right after it). The handler below looks the faulting address
// up in a fixed table of live mappings and, when it falls inside one, writes a prepared error
// line naming the file and exits with status 1 (ExitCode.failure): the same outcome as any
// other unreadable input, instead of a crash.
//
// Signal-safety: the handler only reads the table (plain loads), calls write(2) and _exit(2).
// Entries are published by storing the message and end first and the start last, and retired
// by clearing the start first, so the handler never pairs a start with a stale message. A race
// between a fault and a concurrent unmap of the same region can only make the handler miss it
// (the default action then applies), never print the wrong file.

enum TruncationGuard {
    /// Live mappings tracked; more are still mapped, just not reported by name.
    static let capacity = 256

    private struct Entry {
        var start: UInt
        var end: UInt
        var message: UnsafeMutablePointer<CChar>?
        var length: Int
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static let table: UnsafeMutablePointer<Entry> = {
        let t = UnsafeMutablePointer<Entry>.allocate(capacity: capacity)
        t.initialize(repeating: Entry(start: 0, end: 0, message: nil, length: 0), count: capacity)
        return t
    }()
    nonisolated(unsafe) private static var installed = false

    static func register(start: UnsafeMutableRawPointer, count: Int, path: String) {
        let line = "error: \(path): the file was truncated or became unreadable while in use "
            + "(changed by another process?); nothing was written for this run\n"
        let message = strdup(line)
        lock.withLock {
            for i in 0..<capacity where table[i].start == 0 && table[i].message == nil {
                table[i].message = message
                table[i].length = line.utf8.count
                table[i].end = UInt(bitPattern: start) + UInt(count)
                table[i].start = UInt(bitPattern: start)
                return
            }
            free(message)  // table full: this mapping is not reported by name
        }
    }

    static func unregister(start: UnsafeMutableRawPointer) {
        lock.withLock {
            for i in 0..<capacity where table[i].start == UInt(bitPattern: start) {
                table[i].start = 0
                let message = table[i].message
                table[i].message = nil
                free(message)
                return
            }
        }
    }

    static func install() {
        lock.withLock {
            guard !installed else { return }
            installed = true
            var action = sigaction()
            #if canImport(Glibc)
            action.__sigaction_handler.sa_sigaction = truncationSignalHandler
            #else
            action.__sigaction_u.__sa_sigaction = truncationSignalHandler
            #endif
            action.sa_flags = SA_SIGINFO
            sigemptyset(&action.sa_mask)
            sigaction(SIGBUS, &action, nil)
        }
    }

    /// The message of the live mapping containing `address`, if any (signal handler context).
    fileprivate static func lookup(_ address: UInt) -> (UnsafeMutablePointer<CChar>, Int)? {
        for i in 0..<capacity {
            let start = table[i].start
            guard start != 0, address >= start, address < table[i].end, let m = table[i].message else { continue }
            return (m, table[i].length)
        }
        return nil
    }
}

/// The SIGBUS handler: a known mapping gets its error line and exit 1; anything else falls
/// back to the default action, which re-faults and crashes as without the handler.
private func truncationSignalHandler(_ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _: UnsafeMutableRawPointer?) {
    #if canImport(Glibc)
    let address = info.map { UInt(bitPattern: $0.pointee._sifields._sigfault.si_addr) } ?? 0
    #else
    let address = info.map { UInt(bitPattern: $0.pointee.si_addr) } ?? 0
    #endif
    if let (message, length) = TruncationGuard.lookup(address) {
        _ = write(STDERR_FILENO, message, length)
        _exit(1)
    }
    resetToDefault(signal)
}

private func resetToDefault(_ sig: Int32) { signal(sig, SIG_DFL) }
