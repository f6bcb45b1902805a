import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Views into `bytes` are zero-copy and valid for the
/// lifetime of this object; the kernel pages data in on demand, so a multi-GB checkpoint costs
/// no resident memory until its tensors are touched.
///
/// Empty files are mapped as an empty buffer (mmap refuses length 0).
public final class MappedFile: @unchecked Sendable {
    public let path: String
    public let bytes: UnsafeRawBufferPointer
    private let base: UnsafeMutableRawPointer?

    public init(path: String) throws(FileError) {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw FileError(path, "cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw FileError(path, "cannot stat: \(String(cString: strerror(errno)))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw FileError(path, "not a regular file") }
        let size = Int(st.st_size)
        if size == 0 {
            base = nil
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else { throw FileError(path, "cannot mmap: \(String(cString: strerror(errno)))") }
        base = p
        bytes = UnsafeRawBufferPointer(start: p, count: size)
    }

    public var count: Int { bytes.count }

    deinit {
        if let base { munmap(base, bytes.count) }
    }
}

// MARK: - Atomic output

/// Writes files so that readers never see a half-written output: data goes to a temporary
/// file in the destination directory (same filesystem), is flushed with fsync, and is renamed
/// over the destination only after `body` succeeds. On any error the temporary is removed and
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
