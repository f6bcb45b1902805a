import Foundation
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest

/// Goldens written by scripts/reference/hf_forward_goldens.py (transformers fp32, eager).
enum Golden {
    static func load(_ name: String) throws -> JSON {
        let path = TestFixtures.committed("SlimRuntimeTests", name)
        let bytes = try Gzip.decompressFile(path)
        return try JSON.parse(bytes)
    }

    /// A float32 array stored as base64 of little-endian bytes.
    static func floats(_ json: JSON?, file: StaticString = #filePath, line: UInt = #line) throws -> [Float] {
        let text = try XCTUnwrap(json?.string, "expected a base64 string", file: file, line: line)
        let data = try XCTUnwrap(Data(base64Encoded: text), "bad base64", file: file, line: line)
        XCTAssertEqual(data.count % 4, 0, file: file, line: line)
        return data.withUnsafeBytes { raw in
            (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
        }
    }

    static func ints(_ json: JSON?, file: StaticString = #filePath, line: UInt = #line) throws -> [Int] {
        let list = try XCTUnwrap(json?.array, "expected an array", file: file, line: line)
        return try list.map { try XCTUnwrap($0.int, file: file, line: line) }.map { Int($0) }
    }
}

/// Opens a Hugging Face model directory as a runtime model.
func openModel(_ directory: String, threads: Int = 2) throws -> LlamaModel {
    let config = try LlamaConfig(path: directory + "/config.json")
    let source = try SafetensorsCheckpoint(directory: directory)
    return LlamaModel(weights: try LlamaWeights(config: config, source: source, path: directory), threads: threads)
}

/// The parity metric used throughout: max |actual − expected| over a row divided by
/// max |expected| over that row (a relative error that ignores tiny logits' own noise).
func rowRelativeError(_ actual: ArraySlice<Float>, _ expected: ArraySlice<Float>) -> Float {
    precondition(actual.count == expected.count)
    var maxDiff: Float = 0, maxRef: Float = 0
    for (a, e) in zip(actual, expected) {
        maxDiff = max(maxDiff, abs(a - e))
        maxRef = max(maxRef, abs(e))
    }
    return maxRef > 0 ? maxDiff / maxRef : maxDiff
}

/// Asserts every `width`-wide row of `actual` is within `tolerance` of `expected` (row metric).
func assertRowsClose(_ actual: [Float], _ expected: [Float], width: Int, tolerance: Float,
                     _ label: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "\(label): size", file: file, line: line)
    guard actual.count == expected.count, width > 0 else { return }
    var worst: (row: Int, error: Float) = (0, 0)
    for r in 0..<(actual.count / width) {
        let e = rowRelativeError(actual[(r * width)..<((r + 1) * width)], expected[(r * width)..<((r + 1) * width)])
        if !(e <= worst.error) { worst = (r, e) }
    }
    XCTAssertLessThanOrEqual(worst.error, tolerance, "\(label): worst row \(worst.row)", file: file, line: line)
}
