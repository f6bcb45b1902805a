import Foundation
import SlimTokenizer
import SlimTestSupport
import XCTest

@testable import SlimData

/// Dataset text through a real tokenizer into evaluation windows.
final class TokenizedDatasetTests: XCTestCase {
    private func storiesTokenizer() throws -> Tokenizer {
        let dir = try TestFixtures.shared("models/stories260K")
        return try Tokenizer.load(directory: dir)
    }

    func testPTBTestWindows() throws {
        _ = try TestFixtures.shared("data/ptb/ptb.test.txt")
        let tokenizer = try storiesTokenizer()
        let text = try DatasetLocator(dataDir: TestFixtures.sharedDataDir, environment: [:]).text(.ptb, protocol: .eval)
        let start = Date()
        let windows = TokenWindows.make(from: text, contextLength: 512, tokenizer: tokenizer)
        let seconds = Date().timeIntervalSince(start)
        // The whole corpus is encoded at once with one BOS in front.
        XCTAssertEqual(windows.tokens, tokenizer.encode(text.text, addSpecialTokens: true))
        XCTAssertEqual(windows.tokens.first, tokenizer.bosTokenID)
        XCTAssertEqual(windows.count, windows.tokens.count / 512)
        XCTAssertEqual(windows.count * 512 + windows.droppedTokens, windows.tokens.count)
        XCTAssertEqual(windows.label, "PTB test")
        print("PTB test: \(text.characterCount) characters -> \(windows.tokens.count) tokens in \(String(format: "%.2f", seconds)) s; \(windows.summary)")
    }

    func testC4EvalIsTruncatedTo256Windows() throws {
        _ = try TestFixtures.shared("data/c4/c4-validation.subset-2000.json.gz")
        let tokenizer = try storiesTokenizer()
        let text = try DatasetLocator(dataDir: TestFixtures.sharedDataDir, environment: [:]).text(.c4, protocol: .eval)
        // A short context so that 256 windows are fewer than the 1,100 documents' tokens.
        let windows = TokenWindows.make(from: text, contextLength: 64, tokenizer: tokenizer)
        XCTAssertEqual(windows.tokens.count, 256 * 64)
        XCTAssertEqual(windows.count, 256)
        XCTAssertEqual(windows.droppedTokens, 0)
        XCTAssertEqual(Array(windows[0].prefix(1)), [tokenizer.bosTokenID].compactMap { $0 })
    }
}
