import Foundation
import SlimKernels
import SlimModel
@testable import SlimRuntime
import SlimTestSupport
import XCTest

/// The fp16 KV cache (`--kv-cache f16`): attention on fp16 keys and values is attention on their
/// fp32 widening, bit for bit; sessions and whole-window forwards round the same keys and
/// values, so they agree as the fp32 paths do; and the rounding moves logits only slightly.
final class HalfKVCacheTests: XCTestCase {
    /// `count` uniform values in [-scale, scale).
    private func uniform(_ rng: inout SplitMix64, _ count: Int, scale: Float) -> [Float] {
        (0..<count).map { _ in Float(Int64(bitPattern: rng.next()) >> 40) / Float(1 << 23) * scale }
    }

    private func stories() throws -> (LlamaModel, [Int]) {
        let model = try openModel(try TestFixtures.shared("models/stories260K"))
        let tokens = try Golden.ints(Golden.load("stories260K.json.gz")["window"]?["tokens"])
        return (model, Array(tokens.prefix(160)))
    }

    /// Decode rows (< 4: the chunked decode kernel) and prefill tiles (GEMMs, a partial last
    /// tile), from an empty cache and after earlier positions, with grouped-query heads.
    func testAttentionOnHalfCacheEqualsAttentionOnItsWidening() {
        let heads = 6, kvHeads = 2, headDim = 24
        let attention = CausalAttention(heads: heads, kvHeads: kvHeads, headDim: headDim)
        let qDim = heads * headDim, kvDim = kvHeads * headDim
        for (index, (rows, start)) in [(1, 0), (1, 90), (3, 40), (70, 0), (9, 33)].enumerated() {
            var rng = SplitMix64(seed: UInt64(60 + index))
            let positions = start + rows
            let q = uniform(&rng, rows * qDim, scale: 2)
            let halves = uniform(&rng, 2 * positions * kvDim, scale: 3).map(Kernels.Reference.f32ToF16)
            let widened = halves.map(Kernels.Reference.f16ToF32)
            var expected = [Float](repeating: .nan, count: rows * qDim), actual = expected
            widened.withUnsafeBytes { w in
                attention.run(q: q, keys: w.baseAddress!, values: w.baseAddress! + positions * kvDim * 4, format: .f32,
                              out: &expected, rows: rows, start: start, threads: 2)
            }
            halves.withUnsafeBytes { h in
                attention.run(q: q, keys: h.baseAddress!, values: h.baseAddress! + positions * kvDim * 2, format: .f16,
                              out: &actual, rows: rows, start: start, threads: 2)
            }
            XCTAssertFalse(actual.contains { !$0.isFinite }, "rows \(rows) start \(start): every output written")
            XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "rows \(rows) start \(start)")
        }
    }

    func testHalfCacheSessionMatchesHalfCacheForward() throws {
        let (model, tokens) = try stories()
        let vocab = model.config.vocabSize
        model.kvCacheType = .f16
        let reference = try model.forward(tokens)
        let session = try InferenceSession(model: model, capacity: 256)
        XCTAssertEqual(session.cache.type, .f16, "a session takes the model's cache type")
        session.prefillBlock = 48
        let split = 130
        var logits = try session.prefill(Array(tokens[..<split]), logits: .all)
        for t in tokens[split...] { logits += try session.step(t) }
        assertRowsClose(logits, reference, width: vocab, tolerance: 1e-4, "f16 cache: blocked prefill + decode vs forward")
    }

    func testHalfCacheStaysCloseToFp32AndHalvesTheCache() throws {
        let (model, tokens) = try stories()
        let vocab = model.config.vocabSize
        let fp32 = try model.forward(tokens), nll32 = try model.negativeLogLikelihoods(tokens)
        model.kvCacheType = .f16
        let fp16 = try model.forward(tokens), nll16 = try model.negativeLogLikelihoods(tokens)
        XCTAssertNotEqual(fp16, fp32, "the keys and values were rounded")
        assertRowsClose(fp16, fp32, width: vocab, tolerance: 5e-3, "f16 cache vs f32 cache")
        let mean32 = nll32.reduce(0, +) / Double(nll32.count), mean16 = nll16.reduce(0, +) / Double(nll16.count)
        XCTAssertEqual(mean16, mean32, accuracy: 1e-4 * mean32, "mean NLL")

        let f32 = try KVCache(config: model.config, capacity: 100)
        let f16 = try KVCache(config: model.config, capacity: 100, type: .f16)
        XCTAssertEqual(f16.byteCount * 2, f32.byteCount)
        XCTAssertEqual(f32.byteCount, 2 * model.config.numHiddenLayers * 100 * model.config.kvProjectionSize * 4)
        // An explicit type overrides the model's.
        XCTAssertEqual(try InferenceSession(model: model, capacity: 4, kvCache: .f32).cache.type, .f32)
    }
}
