import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The bytes of a whole file, read-only: read into memory when small, memory-mapped when large.
///
/// Views into `bytes` are zero-copy and valid for the lifetime of this object (keep it alive,
/// e.g. with `withExtendedLifetime`, while using them: ARC may release it after its last use).
/// A mapped multi-GB checkpoint costs no resident memory until its tensors are touched.
///
/// Truncation by another process (a download still running, a copy being replaced):
/// - files up to `readLimit` bytes are read with read(2), so later changes to the file cannot
///   affect `bytes`; a file that shrinks while being read is an error naming it;
/// - larger files are mapped. Touching a page past a concurrent truncation raises SIGBUS in
///   the kernel; no check made beforehand can rule that out. With `installTruncationHandler()`
///   (the CLI installs it) such a fault inside a live mapping prints one line naming the file
///   and exits with status 1 instead of crashing. Outputs are still never half-written
///   (temporary files are renamed into place only when complete), but a run killed this way
///   leaves its temporary files behind like any other kill.
///
/// Empty files give an empty buffer (mmap refuses length 0).
public final class MappedFile: @unchecked Sendable {
    /// Files up to this size are read into memory instead of mapped (configs, tokenizers,
    /// small models, safetensors headers of test fixtures).
    public static let readLimit = 32 << 20

    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let storage: Storage

    private enum Storage {
        case empty
        case heap(UnsafeMutableRawPointer)
        case mapped(UnsafeMutableRawPointer)
    }

    /// How `init(path:mode:)` obtains the bytes.
    public enum Mode: Sendable {
        /// Read files up to `readLimit`, map larger ones.
        case automatic
        /// Always map (tests of the truncation handler).
        case map
        /// Always read.
        case read
    }

    /// Opens `path` (a regular file).
    /// - Throws: `FileError` naming the file when it cannot be opened, is not a regular file,
    ///   cannot be mapped, or shrinks while being read.
    public init(path: String, mode: Mode = .automatic) throws(FileError) {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(path, "cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError(path, "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            storage = .empty
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let read = mode == .read || (mode == .automatic && size <= Self.readLimit)
        if read {
            let p = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 64)
            do {
                try Self.readAll(fd, into: p, count: size, path: path)
            } catch {
                p.deallocate()
                throw error
            }
            storage = .heap(p)
            bytes = UnsafeRawBufferPointer(start: p, count: size)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw FileError(path, "cannot mmap: \(String(cString: strerror(errno)))") }
        storage = .mapped(p)
        bytes = UnsafeRawBufferPointer(start: p, count: size)
        TruncationGuard.register(start: p, count: size, path: path)
    }

    /// An in-memory copy of `source`, named `path` in errors: the same parsing code then runs
    /// on bytes that never were a file (fuzzing, tests).
    public init(copying source: UnsafeRawBufferPointer, path: String) {
        self.path = path
        guard source.count > 0, let from = source.baseAddress else {
            storage = .empty
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = UnsafeMutableRawPointer.allocate(byteCount: source.count, alignment: 64)
        p.copyMemory(from: from, byteCount: source.count)
        storage = .heap(p)
        bytes = UnsafeRawBufferPointer(start: p, count: source.count)
    }

    public var count: Int { bytes.count }

    /// True when the bytes are a memory map (large files), false when read into memory.
    public var isMapped: Bool {
        if case .mapped = storage { return true }
        return false
    }

    /// Runs `body` with the bytes while keeping this object (and so the bytes) alive.
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        defer { withExtendedLifetime(self) {} }
        return try body(bytes)
    }

    deinit {
        switch storage {
        case .empty: break
        case .heap(let p): p.deallocate()
        case .mapped(let p):
            TruncationGuard.unregister(start: p)
            munmap(p, bytes.count)
        }
    }

    /// read(2) until `count` bytes are in `p`; a short file (truncated since fstat) is an error.
    private static func readAll(_ fd: Int32, into p: UnsafeMutableRawPointer, count: Int, path: String) throws(FileError) {
        var done = 0
        while done < count {
            let n = read(fd, p + done, min(count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw FileError(path, "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 {
                throw FileError(path, "file shrank from \(count) to \(done) bytes while being read (modified by another process?)")
            }
            done += n
        }
    }

    /// Installs the SIGBUS handler that turns a fault inside a live file mapping (the file was
    /// truncated while mapped) into one error line naming the file and exit status 1. Faults
    /// elsewhere keep the default action (a crash with a core dump). Idempotent.
    public static func installTruncationHandler() { TruncationGuard.install() }
}

// MARK: - Atomic output

/// Writes files so that readers never see a half-written output: data goes to a temporary
/// file in the destination directory (same filesystem), is flushed with fsync, and is renamed
/// over the destination only after `body` succeeds (the directory is fsynced after the
/// rename). On any error the temporary is removed and
/// the previous destination (if any) is untouched.
public enum AtomicFile {
    public static func write(to path: String, _ body: (FileHandle) throws -> Void) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let name = (path as NSString).lastPathComponent
        let tmp = (dir.isEmpty ? "." : dir) + "/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard FileManager.default.createFile(atPath: tmp, contents: nil) else {
            throw FileError(path, "cannot create temporary file \(tmp): \(String(cString: strerror(errno)))")
        }
        var committed = false
        defer { if !committed { unlink(tmp) } }
        guard let fh = FileHandle(forWritingAtPath: tmp) else {
            throw FileError(path, "cannot open temporary file \(tmp) for writing")
        }
        do {
            try body(fh)
            try fh.synchronize()
            try fh.close()
        } catch let e as FileError {
            try? fh.close()
            throw e
        } catch {
            try? fh.close()
            throw FileError(path, "write failed: \(error.localizedDescription)")
        }
        guard rename(tmp, path) == 0 else {
            throw FileError(path, "cannot rename temporary file into place: \(String(cString: strerror(errno)))")
        }
        committed = true
        // The rename reaches the disk with its directory: without this, a power cut can undo
        // a commit the caller already acted on (e.g. deleting the previous state).
        let dirFD = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
        if dirFD >= 0 {
            _ = fsync(dirFD)
            close(dirFD)
        }
    }

    /// Atomically replaces `path` with `data`.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { fh in try fh.write(contentsOf: data) }
    }

    /// Atomically replaces `path` with the UTF-8 bytes of `text`.
    public static func write(text: String, to path: String) throws {
        try write(Data(text.utf8), to: path)
    }
}
