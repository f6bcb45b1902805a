import Foundation
import SlimTestSupport
import XCTest
@testable import SlimFrontend

/// `--device` and its companions: command-line mistakes are usage errors (64); a missing CUDA
/// backend is one clear line and exit 1, and nothing else changes.
final class DeviceOptionTests: XCTestCase {
    func testDeviceArgumentsAreValidated() {
        let cases: [([String], String)] = [
            (["bench", "--model", "m", "--device", "gpu"], "invalid value for '--device': 'gpu' (expected one of: cpu, cuda)"),
            (["bench", "--model", "m", "--cuda-lib", "/x.so"], "'--cuda-lib' applies only with '--device cuda'"),
            (["bench", "--synthetic", "llama-7b"], "'--synthetic' runs only with '--device cuda'"),
            (["bench", "--synthetic", "llama-7b", "--model", "m", "--device", "cuda"], "mutually exclusive"),
            (["bench", "--synthetic", "llama-9b", "--device", "cuda"], "invalid value for '--synthetic'"),
            (["bench", "--synthetic", "llama-7b", "--device", "cuda", "--bits", "5"], "outside 2...4"),
            (["bench", "--model", "m", "--bits", "3"], "'--bits' applies only with '--synthetic'"),
            (["eval-ppl", "--model", "m", "--dataset", "wikitext2", "--device", "tpu"], "invalid value for '--device'"),
            (["eval-ppl", "--model", "m", "--dataset", "wikitext2", "--cuda-lib", "/x.so"], "'--cuda-lib' applies only"),
            (["eval-ppl", "--model", "m", "--dataset", "wikitext2", "--weights", "fp16"],
             "invalid value for '--weights': 'fp16' (expected one of: native, fp32)"),
            (["bench", "--model", "m", "--device", "cuda", "--weights", "fp32"], "'--weights' applies only with '--device cpu'"),
            (["generate", "--model", "m", "--prompt", "x", "--weights", "half"], "invalid value for '--weights'"),
            (["generate", "--model", "m", "--prompt", "x", "--cuda-lib", "/x.so"], "'--cuda-lib' applies only with '--device cuda'"),
            (["generate", "--model", "m", "--prompt", "x", "--device", "cuda", "--weights", "fp32"], "'--weights' applies only"),
            (["eval-ppl", "--model", "m", "--dataset", "wikitext2", "--activations", "int4"],
             "invalid value for '--activations': 'int4' (expected one of: fp32, int8)"),
            (["eval-ppl", "--model", "m", "--dataset", "wikitext2", "--device", "cuda", "--activations", "int8"],
             "'--activations' applies only with '--device cpu'"),
            (["bench", "--model", "m", "--device", "cuda", "--activations", "fp32"], "'--activations' applies only"),
            (["generate", "--model", "m", "--prompt", "x", "--device", "cuda", "--activations", "int8"], "'--activations' applies only"),
            (["bench", "--model", "m", "--device", "cuda", "--kv-cache", "fp16"],
             "invalid value for '--kv-cache': 'fp16' (expected one of: f32, f16, bf16)"),
            (["generate", "--model", "m", "--prompt", "x", "--kv-cache", "q8_0"], "invalid value for '--kv-cache'"),
            (["bench", "--model", "m", "--depth", "0,,512"], "'0,,512' is not a comma-separated list of integers"),
            (["bench", "--model", "m", "-d", "-1"], "invalid value for '--depth': -1 is outside 0...1048576"),
        ]
        for (args, expected) in cases {
            let r = runCLI(args)
            XCTAssertEqual(r.code, .usage, "\(args): \(r.err)")
            XCTAssertTrue(r.err.contains(expected), "\(args): \(r.err)")
            XCTAssertEqual(r.err.filter { $0 == "\n" }.count, 1, "\(args): \(r.err)")
        }
    }

    func testMissingBackendIsOneLineAndExitOne() throws {
        let model = try TestFixtures.stories260KDir()
        let bench = runCLI(["bench", "--model", model, "-p", "8", "-n", "4", "--device", "cuda",
                            "--cuda-lib", "/nonexistent/libslimcuda.so"])
        XCTAssertEqual(bench.code, .failure, bench.err)
        XCTAssertEqual(bench.err, "error: CUDA backend not found (--cuda-lib: /nonexistent/libslimcuda.so missing); "
                       + "build it with scripts/build-cuda.sh, or pass --cuda-lib / set SLIM_CUDA_LIB\n")
        XCTAssertEqual(bench.out, "")

        let dir = try TestFixtures.temporaryDirectory(self)
        let text = dir + "/story.txt"
        try String(repeating: "Once upon a time there was a little girl. ", count: 20).write(toFile: text, atomically: true, encoding: .utf8)
        let ppl = runCLI(["eval-ppl", "--model", model, "--dataset", text, "--ctx", "32", "--device", "cuda",
                          "--cuda-lib", "/nonexistent/libslimcuda.so"])
        XCTAssertEqual(ppl.code, .failure, ppl.err)
        XCTAssertTrue(ppl.err.hasSuffix("error: CUDA backend not found (--cuda-lib: /nonexistent/libslimcuda.so missing); "
                      + "build it with scripts/build-cuda.sh, or pass --cuda-lib / set SLIM_CUDA_LIB\n"), ppl.err)
        XCTAssertEqual(ppl.out, "")
        let gen = runCLI(["generate", "--model", model, "--prompt", "Once", "--max-tokens", "4", "--device", "cuda",
                          "--cuda-lib", "/nonexistent/libslimcuda.so"])
        XCTAssertEqual(gen.code, .failure, gen.err)
        XCTAssertEqual(gen.err, "error: CUDA backend not found (--cuda-lib: /nonexistent/libslimcuda.so missing); "
                       + "build it with scripts/build-cuda.sh, or pass --cuda-lib / set SLIM_CUDA_LIB\n")
        XCTAssertEqual(gen.out, "", "nothing printed before the device is open")
        // The CPU path of the same command is unchanged.
        let cpu = runCLI(["eval-ppl", "--model", model, "--dataset", text, "--ctx", "32", "--max-windows", "2"])
        XCTAssertEqual(cpu.code, .success, cpu.err)
        XCTAssertTrue(cpu.out.contains("PPL = "), cpu.out)
    }
}
