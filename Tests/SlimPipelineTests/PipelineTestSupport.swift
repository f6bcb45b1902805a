import Foundation
import SlimTestSupport
import XCTest
@testable import SlimPipeline
import SlimQuant

/// Small, fast runs on stories260K (5 layers, hidden 64, intermediate 172): group 32, a few
/// 64-token windows from the first 60 kB of the WikiText-2 train excerpt.
enum PipelineFixture {
    static func model() throws -> String { try TestFixtures.stories260KDir() }

    /// A calibration file in `dir`: the first `bytes` of the WikiText-2 train excerpt.
    static func calibrationFile(in dir: String, bytes: Int = 60_000) throws -> String {
        let source = try TestFixtures.shared("data/wikitext-2-raw/wiki.train.excerpt.txt")
        guard let data = FileManager.default.contents(atPath: source) else { throw FixtureError("cannot read \(source)") }
        // Cut at a line end so the prefix stays valid UTF-8.
        var prefix = data.prefix(bytes)
        if let lastNewline = prefix.lastIndex(of: 0x0A) { prefix = prefix.prefix(through: lastNewline) }
        let path = dir + "/calibration.txt"
        try Data(prefix).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func configuration(out: String, method: QuantMethod, bits: Int, calibration: String, samples: Int = 4,
                              seqLen: Int = 64, threads: Int = 2) throws -> PipelineConfiguration {
        PipelineConfiguration(modelPath: try model(), outputPath: out, method: method, bits: bits, groupSize: 32,
                              samples: samples, sequenceLength: seqLen, seed: 0, calibration: .file(calibration),
                              threads: threads, toolVersion: "test")
    }

    /// Every regular file of a directory, by name.
    static func files(_ dir: String) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: dir) {
            out[name] = try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name))
        }
        return out
    }
}

/// Asserts two checkpoint directories hold the same files with the same bytes.
func assertSameFiles(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
    let fa = try PipelineFixture.files(a), fb = try PipelineFixture.files(b)
    XCTAssertEqual(fa.keys.sorted(), fb.keys.sorted(), file: file, line: line)
    for (name, data) in fa {
        XCTAssertTrue(data == fb[name], "\(name) differs between \(a) and \(b)", file: file, line: line)
    }
}
