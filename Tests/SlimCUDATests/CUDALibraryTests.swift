import Foundation
import SlimTestSupport
import XCTest

@testable import SlimCUDA

/// Loading the backend without CUDA: every failure is one line that says what to do.
final class CUDALibraryTests: XCTestCase {
    func testSearchOrder() {
        XCTAssertEqual(CUDALibrary.candidatePaths(explicit: "/x/lib.so", environment: ["SLIM_CUDA_LIB": "/y.so"]), ["/x/lib.so"])
        XCTAssertEqual(CUDALibrary.candidatePaths(explicit: nil, environment: ["SLIM_CUDA_LIB": "/y.so"]), ["/y.so"])
        let paths = CUDALibrary.candidatePaths(explicit: nil, environment: [:],
                                               executablePaths: ["/p/.build/x86_64-unknown-linux-gnu/release/slim-quant"])
        XCTAssertEqual(Array(paths.prefix(3)), ["/p/.build/x86_64-unknown-linux-gnu/release/libslimcuda.so",
                                                "/p/.build/x86_64-unknown-linux-gnu/cuda/libslimcuda.so",
                                                "/p/.build/cuda/libslimcuda.so"])
    }

    func testMissingLibraryIsOneClearLine() {
        XCTAssertThrowsError(try CUDALibrary.load(explicit: "/nonexistent/libslimcuda.so")) { error in
            let message = String(describing: error)
            XCTAssertTrue(message.contains("/nonexistent/libslimcuda.so"), message)
            XCTAssertTrue(message.contains("scripts/build-cuda.sh"), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
        XCTAssertThrowsError(try CUDALibrary.load(explicit: nil, environment: ["SLIM_CUDA_LIB": "/nonexistent/x.so"])) { error in
            XCTAssertTrue(String(describing: error).contains("$SLIM_CUDA_LIB"), "\(error)")
        }
    }

    func testFilesThatAreNotTheBackendAreRefused() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let text = dir + "/libslimcuda.so"
        try "not a library".write(toFile: text, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CUDALibrary.open(path: text)) { error in
            XCTAssertTrue(String(describing: error).hasPrefix("cannot load \(text):"), "\(error)")
        }
        #if os(Linux)
        // A real shared library without the entry points.
        XCTAssertThrowsError(try CUDALibrary.open(path: "libc.so.6")) { error in
            XCTAssertTrue(String(describing: error).contains("is not a slim-quant CUDA library (no symbol slim_cuda_abi_version)"),
                          "\(error)")
        }
        #endif
    }

    /// With the library built (scripts/build-cuda.sh), it loads and its ABI matches; opening a
    /// device either works (GPU machine) or fails with one line (no GPU).
    func testBuiltLibraryLoadsAndReportsTheDevice() throws {
        let path = TestFixtures.packageRoot + "/.build/cuda/libslimcuda.so"
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("\(path) not built (bash scripts/build-cuda.sh)")
        }
        let library = try CUDALibrary.open(path: path)
        do {
            let context = try CUDAContext(library: library)
            XCTAssertGreaterThanOrEqual(context.device.computeCapability.major, 8)
        } catch {
            let message = String(describing: error)
            XCTAssertTrue(message.hasPrefix("--device cuda: "), message)
            XCTAssertFalse(message.contains("\n"), message)
        }
    }
}
