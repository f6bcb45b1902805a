import Foundation
import SlimIO
import SlimModel
import SlimRuntime
import SlimTestSupport
import XCTest

/// The KV-cache paths (one-token steps, blocked prefill) must give the logits of a
/// whole-window forward at the same positions.
final class KVCacheTests: XCTestCase {
    private func stories() throws -> (LlamaModel, [Int]) {
        let model = try openModel(try TestFixtures.shared("models/stories260K"))
        let tokens = try Golden.ints(Golden.load("stories260K.json.gz")["window"]?["tokens"])
        return (model, Array(tokens.prefix(160)))
    }

    func testStepByStepDecodeEqualsBatchedPrefill() throws {
        let (model, tokens) = try stories()
        let vocab = model.config.vocabSize
        let reference = try model.forward(tokens)
        let session = try InferenceSession(model: model, capacity: tokens.count)
        var stepped: [Float] = []
        for t in tokens { stepped += try session.step(t) }
        XCTAssertEqual(session.position, tokens.count)
        assertRowsClose(stepped, reference, width: vocab, tolerance: 1e-5, "decode vs prefill")
    }

    func testBlockedPrefillThenDecodeEqualsWholeWindow() throws {
        let (model, tokens) = try stories()
        let vocab = model.config.vocabSize
        let reference = try model.forward(tokens)
        let session = try InferenceSession(model: model, capacity: 256)
        session.prefillBlock = 48  // several blocks, the last one partial
        let split = 130
        let prefix = try session.prefill(Array(tokens[..<split]), logits: .all)
        XCTAssertEqual(prefix.count, split * vocab)
        var rest: [Float] = []
        for t in tokens[split...] { rest += try session.step(t) }
        assertRowsClose(prefix + rest, reference, width: vocab, tolerance: 1e-5, "blocked prefill + decode")

        // `.last` returns exactly the final row of `.all`.
        session.reset()
        let last = try session.prefill(tokens, logits: .last)
        assertRowsClose(last, Array(reference.suffix(vocab)), width: vocab, tolerance: 1e-5, "last row")
        session.reset()
        XCTAssertEqual(try session.prefill(tokens, logits: .none), [])
        XCTAssertEqual(session.position, tokens.count)
    }

    func testSessionRejectsBadInputWithoutSideEffects() throws {
        let (model, tokens) = try stories()
        let session = try InferenceSession(model: model, capacity: 8)
        XCTAssertThrowsError(try session.prefill(Array(tokens.prefix(9)))) { error in
            XCTAssertTrue("\(error)".contains("exceed the KV cache capacity 8"), "\(error)")
        }
        XCTAssertEqual(session.position, 0)
        XCTAssertThrowsError(try session.prefill([1, 2, 512])) { error in
            XCTAssertEqual("\(error)", "token id 512 at position 2 is outside the vocabulary (0..<512)")
        }
        XCTAssertThrowsError(try session.step(-1))
        XCTAssertEqual(session.position, 0)
        _ = try session.prefill(Array(tokens.prefix(8)), logits: .none)
        XCTAssertThrowsError(try session.step(tokens[8])) { error in
            XCTAssertTrue("\(error)".contains("context full"), "\(error)")
        }
        session.cache.truncate(to: 7)
        XCTAssertEqual(try session.step(tokens[7]).count, model.config.vocabSize)
        XCTAssertThrowsError(try InferenceSession(model: model, capacity: 0))
        XCTAssertThrowsError(try model.forward([0, 600])) { error in
            XCTAssertEqual("\(error)", "token id 600 at position 1 is outside the vocabulary (0..<512)")
        }
    }

    func testTruncateRewindsToSharedPrefix() throws {
        let (model, tokens) = try stories()
        let session = try InferenceSession(model: model, capacity: 64)
        _ = try session.prefill(Array(tokens.prefix(20)), logits: .none)
        let first = try session.step(tokens[20])
        session.cache.truncate(to: 20)
        let again = try session.step(tokens[20])
        XCTAssertEqual(first, again, "recomputing the same position over the same prefix is bit-identical")
    }

    func testGenerateStopsOnStopTokensAndCallback() throws {
        let model = try openModel(try TestFixtures.shared("models/stories260K"))
        let greedy = try XCTUnwrap(Golden.load("stories260K.json.gz")["greedy"])
        let prompt = try Golden.ints(greedy["prompt"]), expected = try Golden.ints(greedy["generated"])
        let session = try InferenceSession(model: model, capacity: 64)
        var sampler = Sampler.greedy
        let stopped = try session.generate(prompt: prompt, maxNewTokens: 30, sampler: &sampler, stopTokens: [expected[3]])
        XCTAssertEqual(stopped, Array(expected.prefix(4)), "the stop token is included")
        session.reset()
        var seen = 0
        let cut = try session.generate(prompt: prompt, maxNewTokens: 30, sampler: &sampler) { _ in
            seen += 1
            return seen < 2
        }
        XCTAssertEqual(cut, Array(expected.prefix(2)))
        XCTAssertEqual(session.position, prompt.count + 1)
        XCTAssertThrowsError(try session.generate(prompt: [], maxNewTokens: 3, sampler: &sampler)) { error in
            XCTAssertEqual("\(error)", "generate: the prompt is empty")
        }
        XCTAssertEqual(try session.generate(prompt: [1], maxNewTokens: 0, sampler: &sampler), [])
    }
}
