// PythonRandom and calibration offsets against values printed by CPython
// (scripts/reference/cpython_random_golden.py → Fixtures/cpython_random_golden.json).

import SlimQuant
import SlimTestSupport
import XCTest

final class CalibrationRNGTests: XCTestCase {
    private func cases() throws -> [[String: Any]] {
        guard let doc = try loadFixtureJSON("cpython_random_golden.json") as? [String: Any],
              let cases = doc["cases"] as? [[String: Any]], !cases.isEmpty else {
            throw FixtureError("cpython_random_golden.json: missing cases")
        }
        return cases
    }

    func testRawGetrandbits32MatchesCPython() throws {
        for c in try cases() {
            let seed = try jsonInt(c["seed"], "seed")
            var rng = PythonRandom(seed: seed)
            let expected = try jsonInts(c["getrandbits32"], "getrandbits32")
            XCTAssertEqual(expected.count, 16)
            XCTAssertEqual(expected.map { _ in Int(rng.getrandbits(32)) }, expected, "seed \(seed)")
        }
    }

    func testGetrandbitsStreamsIncludingMultiWord() throws {
        for c in try cases() {
            let seed = try jsonInt(c["seed"], "seed")
            guard let streams = c["getrandbits"] as? [String: Any] else { throw FixtureError("getrandbits missing") }
            XCTAssertEqual(streams.count, 5)
            for (key, value) in streams {
                guard let k = Int(key) else { throw FixtureError("bad k \(key)") }
                let expected = try jsonInts(value, "getrandbits(\(k))")
                var rng = PythonRandom(seed: seed)
                XCTAssertEqual(expected.map { _ in Int(rng.getrandbits(k)) }, expected, "seed \(seed) k \(k)")
            }
        }
    }

    func testCalibrationOffsetsMatchCPythonRandint() throws {
        var checked = 0
        for c in try cases() {
            let seed = try jsonInt(c["seed"], "seed")
            guard let windows = c["windows"] as? [[String: Any]] else { throw FixtureError("windows missing") }
            for w in windows {
                let t = try jsonInt(w["tokenCount"], "tokenCount"), length = try jsonInt(w["length"], "length")
                let expected = try jsonInts(w["offsets"], "offsets")
                let offsets = try CalibrationSampling.calibrationOffsets(seed: seed, count: expected.count,
                                                                         tokenCount: t, length: length)
                XCTAssertEqual(offsets, expected, "seed \(seed) T \(t) L \(length)")
                XCTAssertTrue(offsets.allSatisfy { $0 >= 0 && $0 + length < t })
                checked += 1
            }
        }
        XCTAssertEqual(checked, 7 * 5)
    }

    func testRandintSmallAndNegativeRanges() throws {
        for c in try cases() {
            let seed = try jsonInt(c["seed"], "seed")
            guard let ranges = c["randint"] as? [[String: Any]] else { throw FixtureError("randint missing") }
            for r in ranges {
                let a = try jsonInt(r["a"], "a"), b = try jsonInt(r["b"], "b")
                let expected = try jsonInts(r["values"], "values")
                var rng = PythonRandom(seed: seed)
                XCTAssertEqual(expected.map { _ in rng.randint(a, b) }, expected, "seed \(seed) randint(\(a), \(b))")
            }
        }
    }

    func testMultiWordSeedEqualsExplicitKey() {
        var a = PythonRandom(seed: (1 << 32) + 5)
        var b = PythonRandom(key: [5, 1])
        XCTAssertEqual((0..<8).map { _ in a.nextUInt32() }, (0..<8).map { _ in b.nextUInt32() })
        var negative = PythonRandom(seed: -7), positive = PythonRandom(seed: 7)
        XCTAssertEqual(negative.nextUInt32(), positive.nextUInt32())
    }

    func testCalibrationOffsetsRejectShortCorpus() {
        XCTAssertThrowsError(try CalibrationSampling.calibrationOffsets(seed: 0, count: 1, tokenCount: 2048, length: 2048)) { error in
            XCTAssertTrue("\(error)".contains("too short"), "\(error)")
        }
        XCTAssertThrowsError(try CalibrationSampling.calibrationOffsets(seed: 0, count: -1, tokenCount: 5000, length: 2048))
        XCTAssertThrowsError(try CalibrationSampling.calibrationOffsets(seed: 0, count: 1, tokenCount: 5000, length: 0))
        XCTAssertEqual(try CalibrationSampling.calibrationOffsets(seed: 0, count: 0, tokenCount: 5000, length: 2048), [])
    }
}
