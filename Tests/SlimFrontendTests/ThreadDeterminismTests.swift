import Foundation
import SlimIO
import SlimTestSupport
import XCTest
@testable import SlimFrontend

/// Same model, data, flags and seed → the same bytes whatever `--threads` is. Every parallel
/// kernel splits its output (rows, columns, tokens, heads) among workers and reduces in a fixed
/// order that does not depend on the split (GEMM k-blocks in sequence, per-row sums, KL sums per
/// token then in token order): docs/ERRORS.md, "Determinism". The sizes here are chosen so the
/// multi-threaded paths really run: 8 × 128-token windows give GEMMs of 1024 × 172 × 64 (above
/// the 4 MFLOP-per-worker threshold), GPTQ splits 64–172 rows into 16-row chunks, the SBA KL sum
/// splits 1024 tokens, attention splits 8 heads.
final class ThreadDeterminismTests: XCTestCase {
    func testQuantizeAndEvaluateAreThreadCountInvariant() throws {
        let model = try TestFixtures.stories260KDir()
        let calibration = try TestFixtures.shared("data/wikitext-2-raw/wiki.train.excerpt.txt")
        let dir = try TestFixtures.temporaryDirectory(self)
        var outputs: [Int: Data] = [:]
        for threads in [1, 3] {
            let out = dir + "/t\(threads)"
            let r = runCLI(["quantize", "--model", model, "--method", "slim", "--bits", "3", "--group-size", "32",
                            "--samples", "8", "--seq-len", "128", "--calibration", calibration, "--threads", String(threads),
                            "--out", out])
            XCTAssertEqual(r.code, .success, r.err)
            outputs[threads] = FileManager.default.contents(atPath: out + "/model.safetensors")
            XCTAssertEqual(FileManager.default.contents(atPath: out + "/allocation.json"),
                           FileManager.default.contents(atPath: dir + "/t1/allocation.json"))
        }
        XCTAssertNotNil(outputs[1])
        XCTAssertTrue(outputs[1] == outputs[3], "--threads 1 and --threads 3 wrote different checkpoints")

        // The runtime: fp32 forward (dense GEMMs, attention) and the packed kernels.
        for (path, ctx) in [(model, "512"), (dir + "/t1", "256")] {
            var ppl: [String] = []
            for threads in [1, 3] {
                let r = runCLI(["eval-ppl", "--model", path, "--dataset", calibration, "--ctx", ctx, "--max-windows", "2",
                                "--threads", String(threads), "--json"])
                XCTAssertEqual(r.code, .success, r.err)
                ppl.append(try XCTUnwrap(JSON.parse(string: r.out)["ppl"]).serialized())
            }
            XCTAssertEqual(ppl[0], ppl[1], "\(path): perplexity depends on the thread count")
        }
    }
}
