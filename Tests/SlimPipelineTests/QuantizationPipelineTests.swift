import Foundation
import SlimIO
import SlimModel
import SlimTestSupport
import XCTest
@testable import SlimPipeline
import SlimQuant

final class QuantizationPipelineTests: XCTestCase {
    // MARK: Resume and determinism

    /// Interrupting after layer 1, then resuming (with another thread count), gives the same
    /// bytes as an uninterrupted run; the state is kept on interruption and removed on success.
    func testResumeIsByteIdenticalToAnUninterruptedRun() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let calibration = try PipelineFixture.calibrationFile(in: dir)
        let straight = try PipelineFixture.configuration(out: dir + "/straight", method: .slim, bits: 2,
                                                         calibration: calibration, threads: 2)
        let summary = try QuantizationPipeline(configuration: straight).run()
        XCTAssertEqual(summary.resumedFromLayer, 0)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/straight.work"), "work directory removed on success")

        var staged = try PipelineFixture.configuration(out: dir + "/staged", method: .slim, bits: 2,
                                                       calibration: calibration, threads: 1)
        staged.stopAfterLayer = 1
        XCTAssertThrowsError(try QuantizationPipeline(configuration: staged).run()) { error in
            let e = error as? PipelineInterrupted
            XCTAssertEqual(e?.nextLayer, 2)
            XCTAssertEqual(e?.layers, 5)
        }
        let work = dir + "/staged.work"
        for name in ["manifest.json", "state.json", "layer-00000.safetensors", "layer-00001.safetensors",
                     "inputs-00002.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/" + name), "\(name) kept for the resume")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/staged"), "no output before the run ends")

        staged.stopAfterLayer = nil
        staged.threads = 2
        let resumed = try QuantizationPipeline(configuration: staged).run()
        XCTAssertEqual(resumed.resumedFromLayer, 2)
        XCTAssertEqual(resumed.modules.count, 35, "reports of the layers done before the interruption are kept")
        XCTAssertFalse(FileManager.default.fileExists(atPath: work))
        try assertSameFiles(dir + "/straight", dir + "/staged")
    }

    /// A `shouldStop` that turns true mid-layer abandons that layer: the resume restarts it.
    func testStopRequestMidLayerKeepsTheLastCommittedLayer() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let calibration = try PipelineFixture.calibrationFile(in: dir)
        let config = try PipelineFixture.configuration(out: dir + "/out", method: .gptq, bits: 3, calibration: calibration)
        var finished = 0
        let pipeline = QuantizationPipeline(configuration: config, observer: { event in
            if case .layerFinished = event { finished += 1 }
        }, shouldStop: { finished >= 3 })
        // The flag is checked right after a commit: layers 0...2 are done.
        XCTAssertThrowsError(try pipeline.run()) { XCTAssertEqual(($0 as? PipelineInterrupted)?.nextLayer, 3) }

        var polls = 0
        let midLayer = QuantizationPipeline(configuration: config, shouldStop: {
            polls += 1
            return polls > 2  // inside layer 3's Hessian pass
        })
        XCTAssertThrowsError(try midLayer.run()) { XCTAssertEqual(($0 as? PipelineInterrupted)?.nextLayer, 3) }
        let summary = try QuantizationPipeline(configuration: config).run()
        XCTAssertEqual(summary.resumedFromLayer, 3)

        let reference = try PipelineFixture.configuration(out: dir + "/reference", method: .gptq, bits: 3, calibration: calibration)
        _ = try QuantizationPipeline(configuration: reference).run()
        try assertSameFiles(dir + "/out", dir + "/reference")
    }

    func testResumeWithOtherParametersIsRefusedUnlessStartingOver() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let calibration = try PipelineFixture.calibrationFile(in: dir)
        var config = try PipelineFixture.configuration(out: dir + "/out", method: .gptq, bits: 2, calibration: calibration)
        config.stopAfterLayer = 0
        XCTAssertThrowsError(try QuantizationPipeline(configuration: config).run())

        var other = config
        other.bits = 3
        other.stopAfterLayer = nil
        XCTAssertThrowsError(try QuantizationPipeline(configuration: other).run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("different parameters") && text.contains("bits 2 → 3") && text.contains("--no-resume"), text)
        }
        other.resume = false
        let summary = try QuantizationPipeline(configuration: other).run()
        XCTAssertEqual(summary.resumedFromLayer, 0)
        XCTAssertEqual(summary.allocation.histogram, [3: 90])
    }

    /// Two runs never share a work directory; a foreign directory is never deleted.
    func testWorkDirectoryIsLockedAndForeignDirectoriesAreKept() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let manifest = RunManifest(parameters: ["bits": 2])
        var first: WorkDirectory? = try WorkDirectory.open(path: dir + "/work", manifest: manifest, resume: true)
        XCTAssertThrowsError(try WorkDirectory.open(path: dir + "/work", manifest: manifest, resume: false)) {
            XCTAssertTrue("\($0)".contains("in use by another slim-quant quantize process"), "\($0)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/work/manifest.json"), "not deleted while in use")
        XCTAssertNotNil(first)
        first = nil  // releases the lock
        let second = try WorkDirectory.open(path: dir + "/work", manifest: manifest, resume: true)
        XCTAssertEqual(second.state.nextLayer, 0)

        try FileManager.default.createDirectory(atPath: dir + "/mine", withIntermediateDirectories: true)
        try "keep".write(toFile: dir + "/mine/data.txt", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try WorkDirectory.open(path: dir + "/mine", manifest: manifest, resume: false)) {
            XCTAssertTrue("\($0)".contains("not a slim-quant work directory"), "\($0)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/mine/data.txt"))
    }

    /// fp16 activation storage halves the buffer; the quantization errors stay close to fp32's.
    func testHalfPrecisionActivations() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let calibration = try PipelineFixture.calibrationFile(in: dir)
        let full = try QuantizationPipeline(configuration: try PipelineFixture.configuration(
            out: dir + "/f32", method: .gptq, bits: 4, calibration: calibration)).run()
        var halfConfig = try PipelineFixture.configuration(out: dir + "/f16", method: .gptq, bits: 4, calibration: calibration)
        halfConfig.activationStorage = .f16
        let half = try QuantizationPipeline(configuration: halfConfig).run()
        XCTAssertEqual(half.activationBytes * 2, full.activationBytes)
        XCTAssertEqual(full.activationBytes, 4 * 64 * 64 * 4)
        // Per module within 15 % (a flipped rounding in a 64-wide layer moves one module's MSE by
        // several per cent), in total within 3 %.
        for (a, b) in zip(full.modules, half.modules) {
            XCTAssertEqual(a.meanSquaredError, b.meanSquaredError, accuracy: 0.15 * a.meanSquaredError, "\(a.layer) \(a.kind)")
        }
        let totalFull = full.modules.reduce(0) { $0 + $1.meanSquaredError }
        let totalHalf = half.modules.reduce(0) { $0 + $1.meanSquaredError }
        XCTAssertEqual(totalHalf, totalFull, accuracy: 0.03 * totalFull)
        let config = try WorkDirectory.readJSON(dir + "/f16/config.json")
        XCTAssertEqual(config?["quantization_config"]?["activations"]?.string, "f16")
    }

    // MARK: Allocation files

    func testReusedAllocationGivesTheSameWeightsAndForeignOnesAreRejected() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let calibration = try PipelineFixture.calibrationFile(in: dir)
        let first = try QuantizationPipeline(configuration: try PipelineFixture.configuration(
            out: dir + "/sba", method: .slim, bits: 3, calibration: calibration)).run()
        // SBA moves as many groups to N−1 as to N+1, all of full width: down_proj's 172 columns
        // end in a 12-wide group that is never ranked, so the mean over weights is exactly N.
        let h = first.allocation.histogram
        XCTAssertEqual(h[2], h[4])
        XCTAssertGreaterThan(h[2] ?? 0, 0, "the search moved some groups (\(h))")
        XCTAssertEqual(first.allocation.averageBits, 3, "width-weighted mean code bits")
        for (l, layer) in first.allocation.layers.enumerated() {
            XCTAssertEqual(layer["mlp.down_proj"]?.count, 6)
            XCTAssertEqual(layer["mlp.down_proj"]?.last, 3, "layer \(l): the short last group stays at N")
        }

        var reuse = try PipelineFixture.configuration(out: dir + "/reused", method: .slim, bits: 3, calibration: calibration)
        reuse.allocationPath = dir + "/sba/allocation.json"
        let second = try QuantizationPipeline(configuration: reuse).run()
        XCTAssertEqual(second.allocation.layers, first.allocation.layers)
        XCTAssertTrue(second.modules.allSatisfy { $0.searchBest == nil }, "no search with a given allocation")
        let a = try Data(contentsOf: URL(fileURLWithPath: dir + "/sba/model.safetensors"))
        let b = try Data(contentsOf: URL(fileURLWithPath: dir + "/reused/model.safetensors"))
        XCTAssertTrue(a == b, "same allocation, same weights")

        // Saved allocations are taken verbatim, also one that moves the short last group (as
        // the reference's ranking, `rankShortGroup`, can).
        var edited = first.allocation
        edited.layers[0]["mlp.down_proj"] = [2, 3, 3, 3, 3, 4]
        try edited.write(to: dir + "/edited.json")
        var verbatim = try PipelineFixture.configuration(out: dir + "/edited", method: .slim, bits: 3, calibration: calibration)
        verbatim.allocationPath = dir + "/edited.json"
        let third = try QuantizationPipeline(configuration: verbatim).run()
        XCTAssertEqual(third.allocation.layers, edited.layers)
        XCTAssertEqual(third.modules.first { $0.layer == 0 && $0.kind == .downProj }?.bits, [2, 3, 3, 3, 3, 4])
        XCTAssertEqual(third.allocation.averageBits, edited.averageBits)
        XCTAssertLessThan(third.allocation.averageBits, 3, "a 32-wide group lost a bit, a 12-wide one gained one")

        // An allocation whose shapes belong to another model.
        var foreign = try AllocationFile.load(path: dir + "/sba/allocation.json")
        foreign.shapes["mlp.down_proj"] = [64, 256]
        try foreign.write(to: dir + "/foreign.json")
        reuse.allocationPath = dir + "/foreign.json"
        reuse.outputPath = dir + "/foreign-out"
        XCTAssertThrowsError(try QuantizationPipeline(configuration: reuse).run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("foreign.json") && text.contains("does not fit the model"), text)
        }
        // The right model, but another group size.
        reuse.allocationPath = dir + "/sba/allocation.json"
        reuse.groupSize = 64
        XCTAssertThrowsError(try QuantizationPipeline(configuration: reuse).run()) { error in
            XCTAssertTrue("\(error)".contains("group size 32"), "\(error)")
        }
    }

    // MARK: Errors

    func testCalibrationShorterThanOneSampleIsAClearError() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let tiny = dir + "/tiny.txt"
        try "Once upon a time.".write(toFile: tiny, atomically: true, encoding: .utf8)
        let config = try PipelineFixture.configuration(out: dir + "/out", method: .gptq, bits: 2, calibration: tiny)
        XCTAssertThrowsError(try QuantizationPipeline(configuration: config).run()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix(tiny) && text.contains("too short for one 64-token sample"), text)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/out.work"), "nothing started")
    }

    func testOutputDestinationsThatMustNotBeReplaced() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        let calibration = try PipelineFixture.calibrationFile(in: dir)
        try FileManager.default.createDirectory(atPath: dir + "/busy", withIntermediateDirectories: true)
        try "x".write(toFile: dir + "/busy/notes.txt", atomically: true, encoding: .utf8)
        let busy = try PipelineFixture.configuration(out: dir + "/busy", method: .rtn, bits: 4, calibration: calibration)
        XCTAssertThrowsError(try QuantizationPipeline(configuration: busy).run()) {
            XCTAssertTrue("\($0)".contains("refusing to replace"), "\($0)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/busy/notes.txt"))
        let intoModel = try PipelineFixture.configuration(out: try PipelineFixture.model(), method: .rtn, bits: 4,
                                                          calibration: calibration)
        XCTAssertThrowsError(try QuantizationPipeline(configuration: intoModel).run()) {
            XCTAssertTrue("\($0)".contains("input model's directory"), "\($0)")
        }
        // A previous output is replaced, atomically.
        let rtn = try PipelineFixture.configuration(out: dir + "/out", method: .rtn, bits: 4, calibration: calibration)
        _ = try QuantizationPipeline(configuration: rtn).run()
        var again = rtn
        again.bits = 3
        _ = try QuantizationPipeline(configuration: again).run()
        let config = try WorkDirectory.readJSON(dir + "/out/config.json")
        XCTAssertEqual(config?["quantization_config"]?["bits"]?.int, 3)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "no staging or aside directories left")
    }

    /// RTN reads no calibration data and writes no activations.
    func testRTNNeedsNoCalibration() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        var config = try PipelineFixture.configuration(out: dir + "/out", method: .rtn, bits: 2,
                                                       calibration: dir + "/does-not-exist.txt")
        config.stopAfterLayer = 2
        XCTAssertThrowsError(try QuantizationPipeline(configuration: config).run())
        let work = try FileManager.default.contentsOfDirectory(atPath: dir + "/out.work")
        XCTAssertFalse(work.contains { $0.hasPrefix("inputs-") }, "\(work)")
        config.stopAfterLayer = nil
        let summary = try QuantizationPipeline(configuration: config).run()
        XCTAssertNil(summary.calibrationSHA256)
        XCTAssertEqual(summary.activationBytes, 0)
        let q = try WorkDirectory.readJSON(dir + "/out/config.json")?["quantization_config"]
        XCTAssertEqual(q?["samples"], .null)
        XCTAssertEqual(q?["method"]?.string, "rtn")
    }
}
