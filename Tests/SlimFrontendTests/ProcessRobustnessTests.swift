import Foundation
import SlimIO
import SlimTestSupport
import XCTest
@testable import SlimFrontend

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The built `slim-quant` executable as a subprocess: SIGKILL at random points, SIGINT, and
/// write errors (RLIMIT_FSIZE, the kernel's EFBIG — what a full disk looks like to write(2)),
/// each checked for "resumes to the same bytes" and "no partial output". stories260K, 4 × 64
/// token windows, group 32: each run takes about a second in a debug build.
final class ProcessRobustnessTests: XCTestCase {
    var dir = ""
    var calibration = ""
    var model = ""
    var binary = ""

    override func setUpWithError() throws {
        model = try TestFixtures.stories260KDir()
        calibration = try TestFixtures.shared("data/wikitext-2-raw/wiki.train.excerpt.txt")
        dir = try TestFixtures.temporaryDirectory(self)
        binary = try Self.slimQuantBinary()
    }

    /// `slim-quant` next to the test bundle (SwiftPM builds it with the tests).
    static func slimQuantBinary() throws -> String {
        let bundleDir = (Bundle.main.bundlePath as NSString).standardizingPath
        var candidates = [(bundleDir as NSString).appendingPathComponent("slim-quant"),
                          ((CommandLine.arguments.first ?? "") as NSString).deletingLastPathComponent + "/slim-quant"]
        for config in ["debug", "release"] { candidates.append(TestFixtures.packageRoot + "/.build/\(config)/slim-quant") }
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw FixtureError("slim-quant executable not found (looked at \(candidates.joined(separator: ", "))): run swift build")
        }
        return found
    }

    func quantizeArgs(out: String, threads: Int = 2, method: String = "slim") -> [String] {
        ["quantize", "--model", model, "--method", method, "--bits", "3", "--group-size", "32", "--samples", "4",
         "--seq-len", "64", "--calibration", calibration, "--threads", String(threads), "--out", out]
    }

    /// Starts `arguments` (through `/bin/sh -c prelude; exec` when `shellPrelude` is given) with
    /// stdout and stderr going to files in `dir`.
    func start(_ arguments: [String], shellPrelude: String? = nil, log: String) throws -> Process {
        let p = Process()
        if let shellPrelude {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", shellPrelude + "; exec \"$0\" \"$@\"", binary] + arguments
        } else {
            p.executableURL = URL(fileURLWithPath: binary)
            p.arguments = arguments
        }
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardError = handle
        p.standardOutput = handle
        try p.run()
        return p
    }

    func run(_ arguments: [String], shellPrelude: String? = nil) throws -> (status: Int32, log: String) {
        let log = dir + "/run-\(UUID().uuidString).log"
        let p = try start(arguments, shellPrelude: shellPrelude, log: log)
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "")
    }

    func contents(_ directory: String) -> [String: Data] {
        var files: [String: Data] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? [] {
            files[name] = FileManager.default.contents(atPath: directory + "/" + name)
        }
        return files
    }

    /// Hidden entries (staging directories, temporary files) left in `dir`.
    func leftovers() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix(".") }
    }

    // MARK: SIGKILL

    /// SIGKILL at seeded random moments (calibration, any layer, the output write), then a
    /// plain rerun: the result is byte-identical to an uninterrupted run, and at no moment
    /// does the output path hold anything but nothing or the complete checkpoint.
    func testSIGKILLAtRandomPointsThenResumeGivesIdenticalBytes() throws {
        let t0 = Date()
        let reference = try run(quantizeArgs(out: dir + "/reference"))
        let duration = Date().timeIntervalSince(t0)
        XCTAssertEqual(reference.status, 0, reference.log)
        let expected = contents(dir + "/reference")
        XCTAssertEqual(Set(expected.keys), ["config.json", "model.safetensors", "allocation.json", "tokenizer.json",
                                            "tokenizer_config.json"])

        var rng: UInt64 = 0x5EED_0007
        var kills = 0
        for attempt in 0..<6 {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            // Uniform in [0.05, 1.1] × the uninterrupted duration.
            let fraction = 0.05 + 1.05 * Double(rng >> 11) / Double(1 << 53)
            let p = try start(quantizeArgs(out: dir + "/killed"), log: dir + "/kill-\(attempt).log")
            usleep(UInt32(fraction * duration * 1e6))
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
            p.waitUntilExit()
            if p.terminationReason == .uncaughtSignal {
                XCTAssertEqual(p.terminationStatus, SIGKILL)
                kills += 1
            } else {
                XCTAssertEqual(p.terminationStatus, 0, "attempt \(attempt) finished on its own")
            }
            let now = contents(dir + "/killed")
            XCTAssertTrue(now.isEmpty || now == expected, "attempt \(attempt): the output is partial or different")
            if now == expected { break }
        }
        XCTAssertGreaterThan(kills, 0, "no run was killed: the test proved nothing")
        let resumed = try run(quantizeArgs(out: dir + "/killed"))
        XCTAssertEqual(resumed.status, 0, resumed.log)
        XCTAssertTrue(contents(dir + "/killed") == expected, "resumed output differs from the uninterrupted run")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/killed.work"))
        XCTAssertEqual(leftovers(), [], "staging or temporary files left behind")
    }

    /// What a kill leaves at the two worst moments: a work directory holding only the lock and
    /// the temporary manifest (killed while writing it), and a staging directory of a dead
    /// process beside the output. The next run starts cleanly and removes both.
    func testLeftoversOfAKilledRunDoNotBlockTheNextOne() throws {
        let work = dir + "/out.work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: work + "/lock", contents: nil)
        _ = FileManager.default.createFile(atPath: work + "/.manifest.json.tmp-999999-1", contents: Data("{".utf8))
        // A pid that cannot be running: above Linux's pid_max limit (4194304).
        try FileManager.default.createDirectory(atPath: dir + "/.out.partial-99999999", withIntermediateDirectories: true)
        let r = runCLI(quantizeArgs(out: dir + "/out", method: "rtn"))
        XCTAssertEqual(r.code, .success, r.err)
        XCTAssertEqual(leftovers(), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: work))
    }

    // MARK: SIGINT

    /// SIGINT during the run: state saved, exit 130, a resume hint; the rerun resumes to the
    /// bytes of an uninterrupted run.
    func testSIGINTSavesStateExits130AndResumes() throws {
        let reference = try run(quantizeArgs(out: dir + "/reference", method: "gptq"))
        XCTAssertEqual(reference.status, 0, reference.log)
        let log = dir + "/sigint.log"
        let p = try start(quantizeArgs(out: dir + "/stopped", method: "gptq"), log: log)
        // Interrupt as soon as the first layer is done (polling the log).
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning, Date() < deadline,
              !((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("layer 1/5 done") {
            usleep(2_000)
        }
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 130, text)
        XCTAssertTrue(text.contains("layers are saved in \(dir)/stopped.work"), text)
        XCTAssertTrue(text.contains("run the same command again to resume"), text)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/stopped"), "no output after an interrupt")

        let resumed = try run(quantizeArgs(out: dir + "/stopped", method: "gptq"))
        XCTAssertEqual(resumed.status, 0, resumed.log)
        XCTAssertTrue(resumed.log.contains("resuming at layer"), resumed.log)
        XCTAssertTrue(contents(dir + "/stopped") == contents(dir + "/reference"))
    }

    // MARK: Write errors

    /// A write error (the file size limit: EFBIG from write(2), as ENOSPC from a full disk)
    /// while saving a layer or the output: exit 1 with one line naming the file, the previous
    /// output and the saved state intact, and the rerun without the limit resumes to the bytes
    /// of an uninterrupted run.
    func testWriteErrorLeavesPreviousOutputAndStateIntact() throws {
        let reference = try run(quantizeArgs(out: dir + "/reference", method: "gptq"))
        XCTAssertEqual(reference.status, 0, reference.log)
        let expected = contents(dir + "/reference")

        // A previous output at the destination (another run's result) must survive.
        let previous = try run(quantizeArgs(out: dir + "/out", method: "rtn"))
        XCTAssertEqual(previous.status, 0, previous.log)
        let before = contents(dir + "/out")

        // 200 blocks (100 KiB for a POSIX shell's 512-byte blocks, 200 KiB for bash's 1 KiB):
        // the work files (≤ 70 KB) fit, the output's model.safetensors (~390 KB) does not.
        let limited = try run(quantizeArgs(out: dir + "/out", method: "gptq"), shellPrelude: "trap '' XFSZ; ulimit -f 200")
        XCTAssertEqual(limited.status, 1, limited.log)
        let errors = limited.log.split(separator: "\n").filter { $0.hasPrefix("error: ") }
        XCTAssertEqual(errors.count, 1, limited.log)
        XCTAssertTrue(errors.first?.contains("model.safetensors") == true && errors.first?.contains("File too large") == true,
                      limited.log)
        XCTAssertTrue(contents(dir + "/out") == before, "the previous output changed")
        XCTAssertEqual(leftovers(), [], "staging or temporary files left behind")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/out.work/state.json"), "the finished layers are kept")

        // A limit hit while committing a layer (the next layer's inputs file is ~66 KB): the
        // state stays at the last committed layer.
        let early = try run(quantizeArgs(out: dir + "/early", method: "gptq"), shellPrelude: "trap '' XFSZ; ulimit -f 40")
        XCTAssertEqual(early.status, 1, early.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/early"))

        for out in ["out", "early"] {
            let resumed = try run(quantizeArgs(out: dir + "/" + out, method: "gptq"))
            XCTAssertEqual(resumed.status, 0, resumed.log)
            XCTAssertTrue(contents(dir + "/" + out) == expected, "\(out): resumed output differs")
        }
        XCTAssertEqual(leftovers(), [])
    }
}
