// Finding and loading libslimcuda.so at run time. slim-quant never links against CUDA: without
// the library (or without a GPU) only `--device cuda` fails, with one clear line.

import CSlimCUDA
import Foundation

/// A failure of the CUDA backend, as one line: what failed, why, and what to do about it.
public struct CUDAError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The CUDA backend library, opened with dlopen, its entry points resolved and its ABI version
/// checked. Contexts keep their library alive; it is closed when the last one is gone.
public final class CUDALibrary: @unchecked Sendable {
    /// The file the build script produces.
    public static let fileName = "libslimcuda.so"
    /// Environment variable naming the library explicitly.
    public static let environmentVariable = "SLIM_CUDA_LIB"

    /// The path it was loaded from.
    public let path: String
    var api: slim_cuda_api

    private init(path: String, api: slim_cuda_api) {
        self.path = path
        self.api = api
    }

    deinit { slim_cuda_api_unload(&api) }

    // MARK: - Locating

    /// Where to look, in order: `explicit` (`--cuda-lib`) alone when given; else
    /// `$SLIM_CUDA_LIB` alone when set; else next to the executable and in the package's
    /// `.build/cuda` relative to it (where scripts/build-cuda.sh writes), then `./.build/cuda`.
    public static func candidatePaths(explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                                      executablePaths: [String] = CUDALibrary.executablePaths()) -> [String] {
        if let explicit, !explicit.isEmpty { return [explicit] }
        if let env = environment[environmentVariable], !env.isEmpty { return [env] }
        var paths: [String] = []
        for exe in executablePaths {
            let dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
            // .build/release/slim-quant → .build/cuda; .build/<triple>/release/slim-quant → .build/cuda.
            for relative in [fileName, "../cuda/" + fileName, "../../cuda/" + fileName] {
                paths.append(dir.appendingPathComponent(relative).standardizedFileURL.path)
            }
        }
        paths.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
            .appendingPathComponent(".build/cuda/" + fileName).path)
        var seen = Set<String>()
        return paths.filter { seen.insert($0).inserted }
    }

    /// The running executable as invoked (argv[0], which may be a symlink such as
    /// .build/release/slim-quant) and as resolved (/proc/self/exe).
    public static func executablePaths() -> [String] {
        var paths: [String] = []
        if let argv0 = CommandLine.arguments.first, argv0.contains("/") {
            paths.append(URL(fileURLWithPath: argv0).standardizedFileURL.path)
        }
        if let resolved = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            paths.append(resolved)
        }
        return paths
    }

    // MARK: - Loading

    /// Loads the first existing candidate (`candidatePaths`).
    /// - Throws: `CUDAError` when no candidate exists (listing where it looked and how to build
    ///   the library), when dlopen fails, when the file lacks an entry point, or when its ABI
    ///   version differs from this build's.
    public static func load(explicit: String? = nil,
                            environment: [String: String] = ProcessInfo.processInfo.environment) throws(CUDAError) -> CUDALibrary {
        let candidates = candidatePaths(explicit: explicit, environment: environment)
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            let origin = explicit != nil ? "--cuda-lib" : (environment[environmentVariable].map { _ in "$\(environmentVariable)" } ?? "search")
            throw CUDAError("CUDA backend not found (\(origin): \(candidates.joined(separator: ", ")) missing); "
                + "build it with scripts/build-cuda.sh, or pass --cuda-lib / set \(environmentVariable)")
        }
        return try open(path: path)
    }

    /// Opens the library at `path`.
    public static func open(path: String) throws(CUDAError) -> CUDALibrary {
        var api = slim_cuda_api()
        var message = [CChar](repeating: 0, count: 1024)
        let status = slim_cuda_api_load(path, &api, &message, message.count)
        guard status == 0 else {
            throw CUDAError(String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return CUDALibrary(path: path, api: api)
    }

    // MARK: - Calls

    /// The library's message for the last failure on this thread.
    func lastError() -> String {
        guard let text = api.last_error?() else { return "unknown error" }
        return String(cString: text)
    }

    /// Turns a C status into a thrown `CUDAError` carrying the library's message.
    @inline(__always)
    func check(_ status: Int32, _ what: @autoclosure () -> String) throws(CUDAError) {
        if status != 0 { throw CUDAError("\(what()): \(lastError())") }
    }
}
