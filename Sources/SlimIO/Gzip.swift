import CZlib
import Foundation

/// gzip / zlib decompression through the system zlib.
public enum Gzip {
    /// Inflates a gzip (or zlib) stream, including concatenated gzip members as produced by
    /// `cat a.gz b.gz`. Throws on truncated or corrupt input.
    /// - Parameter path: used only to name the file in errors.
    public static func decompress(_ input: UnsafeRawBufferPointer, path: String = "<memory>") throws(FileError) -> [UInt8] {
        if input.isEmpty { throw FileError(path, "empty gzip stream") }
        var out = [UInt8]()
        out.reserveCapacity(min(input.count * 4, 1 << 30))
        var offset = 0
        let chunk = 1 << 16
        var buffer = [UInt8](repeating: 0, count: chunk)
        while offset < input.count {
            var stream = z_stream()
            // 15 + 32: auto-detect gzip or zlib header.
            guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
                throw FileError(path, "zlib initialisation failed")
            }
            defer { inflateEnd(&stream) }
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset)
            stream.avail_in = UInt32(min(input.count - offset, Int(UInt32.max)))
            var status: Int32 = Z_OK
            repeat {
                status = buffer.withUnsafeMutableBufferPointer { buf -> Int32 in
                    stream.next_out = buf.baseAddress
                    stream.avail_out = UInt32(chunk)
                    let r = inflate(&stream, Z_NO_FLUSH)
                    return r
                }
                let produced = chunk - Int(stream.avail_out)
                out.append(contentsOf: buffer[0..<produced])
                if status == Z_BUF_ERROR && stream.avail_in == 0 {
                    throw FileError(path, "truncated gzip stream")
                }
                if status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR {
                    let msg = stream.msg.map { String(cString: $0) } ?? "code \(status)"
                    throw FileError(path, "corrupt gzip stream: \(msg)")
                }
            } while status != Z_STREAM_END
            offset = input.count - Int(stream.avail_in)
            // Trailing zero padding after the last member is tolerated (gzip does too).
            if input[offset...].allSatisfy({ $0 == 0 }) { break }
        }
        return out
    }

    /// Reads and inflates a `.gz` file.
    public static func decompressFile(_ path: String) throws(FileError) -> [UInt8] {
        let file = try MappedFile(path: path)
        return try file.withBytes { bytes throws(FileError) in try decompress(bytes, path: path) }
    }

    /// Compresses `data` as a single gzip member (used for committed golden fixtures and tests).
    public static func compress(_ data: [UInt8], level: Int32 = 6) throws(FileError) -> [UInt8] {
        var stream = z_stream()
        guard deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION,
                            Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw FileError("<memory>", "zlib initialisation failed") }
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(data.count))) + 32)
        let produced: Int = data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                stream.next_in = UnsafeMutablePointer(mutating: src.baseAddress)
                stream.avail_in = UInt32(src.count)
                stream.next_out = dst.baseAddress
                stream.avail_out = UInt32(dst.count)
                _ = deflate(&stream, Z_FINISH)
                return dst.count - Int(stream.avail_out)
            }
        }
        return Array(out[0..<produced])
    }
}
