import SlimTestSupport
import XCTest

@testable import SlimData

final class TokenWindowsTests: XCTestCase {
    func testNonOverlappingWindowsDropTheTail() {
        let w = TokenWindows(tokens: Array(0..<10), contextLength: 4, label: "t")
        XCTAssertEqual(w.count, 2)
        XCTAssertEqual(w.droppedTokens, 2)
        XCTAssertEqual(Array(w[0]), [0, 1, 2, 3])
        XCTAssertEqual(Array(w[1]), [4, 5, 6, 7])
        XCTAssertEqual(w.summary, "t: 2 windows of 4 tokens (10 tokens, 2 trailing tokens dropped)")
        let short = TokenWindows(tokens: [1, 2], contextLength: 4, label: "s")
        XCTAssertEqual(short.count, 0)
        XCTAssertEqual(short.droppedTokens, 2)
    }

    func testC4EvalTruncation() {
        let tokens = Array(0..<(256 * 3 + 5))
        XCTAssertEqual(TokenWindows.truncateC4Eval(tokens, contextLength: 3).count, 768)
        XCTAssertEqual(TokenWindows.truncateC4Eval(tokens, contextLength: 4).count, tokens.count)
        XCTAssertEqual(TokenWindows.truncateC4Eval(tokens, contextLength: Int.max).count, tokens.count)
    }

    /// Only C4 text loaded for evaluation is truncated; the encoder sees the whole string.
    func testMakeAppliesTheProtocol() throws {
        let dir = TemporaryDirectory()
        let docs = (0..<300).map { "{\"text\": \"d\($0)\"}" }.joined(separator: "\n")
        try dir.write("c4/c4-validation.00000-of-00008.json", text: docs)
        try dir.write("ptb/ptb.test.txt", text: String(repeating: " w \n", count: 300))
        var locator = DatasetLocator(dataDir: dir.path, environment: [:])
        locator.verifyAgainstManifest = false
        // A stand-in encoder: one token per character.
        let encode: (String) -> [Int] = { $0.unicodeScalars.map { Int($0.value) } }

        let c4 = try locator.text(.c4, protocol: .eval)
        XCTAssertTrue(c4.needsC4EvalTruncation)
        let c4Windows = TokenWindows.make(from: c4, contextLength: 2, encode: encode)
        XCTAssertEqual(c4Windows.tokens.count, 512)
        XCTAssertEqual(c4Windows.tokens, Array(encode(c4.text).prefix(512)))

        let c4Calibration = try locator.text(.c4, split: .validation, protocol: .calibration)
        XCTAssertFalse(c4Calibration.needsC4EvalTruncation)
        XCTAssertEqual(c4Calibration.documents?.count, 300)

        let ptb = try locator.text(.ptb, protocol: .eval)
        let ptbWindows = TokenWindows.make(from: ptb, contextLength: 2, encode: encode)
        XCTAssertEqual(ptbWindows.tokens.count, 300 * 2 - 1)
        XCTAssertEqual(ptbWindows.count, 299)
        XCTAssertEqual(ptbWindows.droppedTokens, 1)
        XCTAssertEqual(ptbWindows.label, "PTB test")
    }
}
