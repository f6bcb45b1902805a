import Foundation
import SlimKernels
import SlimModel
@testable import SlimRuntime
import SlimTestSupport
import XCTest

/// The 16-bit KV caches (`--kv-cache f16|bf16`): attention on 16-bit keys and values is attention
/// on their fp32 widening, bit for bit; sessions and whole-window forwards round the same keys and
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
            let floats = uniform(&rng, 2 * positions * kvDim, scale: 3)
            for format in [StorageFormat.f16, .bf16] {
                let halves = floats.map { Kernels.Reference.f32ToHalf($0, format) }
                let widened = halves.map { Kernels.Reference.halfToF32($0, format) }
                var expected = [Float](repeating: .nan, count: rows * qDim), actual = expected
                widened.withUnsafeBytes { w in
                    attention.run(q: q, keys: w.baseAddress!, values: w.baseAddress! + positions * kvDim * 4,
                                  format: .f32, out: &expected, rows: rows, start: start, threads: 2)
                }
                halves.withUnsafeBytes { h in
                    attention.run(q: q, keys: h.baseAddress!, values: h.baseAddress! + positions * kvDim * 2,
                                  format: format, out: &actual, rows: rows, start: start, threads: 2)
                }
                let label = "\(format) rows \(rows) start \(start)"
                XCTAssertFalse(actual.contains { !$0.isFinite }, "\(label): every output written")
                XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), label)
            }
        }
    }

    /// What bf16 is for: values past fp16's 65504 (outlier channels) stay finite, rounded to
    /// within 2^-9 relative, where an fp16 cache turns them into infinities.
    func testBF16CacheKeepsValuesBeyondTheHalfRange() {
        let heads = 2, kvHeads = 1, headDim = 16, positions = 5
        let attention = CausalAttention(heads: heads, kvHeads: kvHeads, headDim: headDim)
        var rng = SplitMix64(seed: 99)
        let q = uniform(&rng, heads * headDim, scale: 1)
        let keys = uniform(&rng, positions * headDim, scale: 1)
        let values = uniform(&rng, positions * headDim, scale: 1).map { $0 * 3e5 }
        func run(_ format: StorageFormat) -> [Float] {
            let cache = (keys + values).map { Kernels.Reference.f32ToHalf($0, format) }
            var out = [Float](repeating: .nan, count: heads * headDim)
            cache.withUnsafeBytes { c in
                attention.run(q: q, keys: c.baseAddress!, values: c.baseAddress! + positions * headDim * 2,
                              format: format, out: &out, rows: 1, start: positions - 1, threads: 1)
            }
            return out
        }
        var exact = [Float](repeating: .nan, count: heads * headDim)
        (keys + values).withUnsafeBytes { c in
            attention.run(q: q, keys: c.baseAddress!, values: c.baseAddress! + positions * headDim * 4, format: .f32,
                          out: &exact, rows: 1, start: positions - 1, threads: 1)
        }
        XCTAssertTrue(run(.f16).contains { !$0.isFinite }, "fp16 overflows past 65504")
        let bf16 = run(.bf16)
        let scale = values.map(abs).max()!
        for (a, e) in zip(bf16, exact) {
            XCTAssertTrue(a.isFinite)
            // Keys and values each rounded by ≤ 2^-9 relative; the keys move the weights slightly.
            XCTAssertEqual(a, e, accuracy: 2e-2 * scale)
        }
    }

    func testHalfCacheSessionMatchesHalfCacheForward() throws {
        let (model, tokens) = try stories()
        let vocab = model.config.vocabSize
        for type in [KVCacheType.f16, .bf16] {
            model.kvCacheType = type
            let reference = try model.forward(tokens)
            let session = try InferenceSession(model: model, capacity: 256)
            XCTAssertEqual(session.cache.type, type, "a session takes the model's cache type")
            session.prefillBlock = 48
            let split = 130
            var logits = try session.prefill(Array(tokens[..<split]), logits: .all)
            for t in tokens[split...] { logits += try session.step(t) }
            // The session's fp32 keys and values differ from the forward's by fp32 rounding;
            // where that moves one across a rounding boundary of the cache, the element moves by
            // one ulp of the cache's format: 2^-11 relative for fp16 (measured 2.4e-5 in the
            // logits), 2^-8 for bf16 (measured 2.9e-3).
            assertRowsClose(logits, reference, width: vocab, tolerance: type == .f16 ? 1e-4 : 1e-2,
                            "\(type) cache: blocked prefill + decode vs forward")
        }
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

        // bfloat16 keeps 8 significant bits to fp16's 11: 8× the rounding moves logits about 8×
        // as far (measured 2.5e-2 vs 1.5e-3) and the mean NLL, a second-order effect, about 64×
        // (1.05e-3 vs 1.5e-5 relative).
        model.kvCacheType = .bf16
        let bf16 = try model.forward(tokens), nllB = try model.negativeLogLikelihoods(tokens)
        XCTAssertNotEqual(bf16, fp16, "bf16 rounds differently from fp16")
        assertRowsClose(bf16, fp32, width: vocab, tolerance: 6e-2, "bf16 cache vs f32 cache")
        let meanB = nllB.reduce(0, +) / Double(nllB.count)
        XCTAssertEqual(meanB, mean32, accuracy: 3e-3 * mean32, "mean NLL, bf16 cache")

        let f32 = try KVCache(config: model.config, capacity: 100)
        let f16 = try KVCache(config: model.config, capacity: 100, type: .f16)
        XCTAssertEqual(f16.byteCount * 2, f32.byteCount)
        XCTAssertEqual(try KVCache(config: model.config, capacity: 100, type: .bf16).byteCount, f16.byteCount)
        XCTAssertEqual(f32.byteCount, 2 * model.config.numHiddenLayers * 100 * model.config.kvProjectionSize * 4)
        // An explicit type overrides the model's.
        XCTAssertEqual(try InferenceSession(model: model, capacity: 4, kvCache: .f32).cache.type, .f32)
    }
}

