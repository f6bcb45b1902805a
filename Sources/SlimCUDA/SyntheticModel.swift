// Random packed models of real shapes, built directly in the GPU layout: decode speed at sizes
// no fixture has (`bench --synthetic llama-7b --bits 2 --device cuda`). Random weights give
// meaningless text and realistic speed: the kernels' work depends only on shapes and bit widths.

import SlimIO
import SlimKernels
import SlimModel
import SlimRuntime

/// Shapes of well-known models.
public enum SyntheticModel: String, CaseIterable, Sendable {
    /// LLaMA-1/2 7B: hidden 4096, MLP 11008, 32 layers × 32 heads, vocabulary 32000.
    case llama7b = "llama-7b"

    /// Its config.json.
    public var config: LlamaConfig {
        let json: JSON
        switch self {
        case .llama7b:
            json = ["architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
                    "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
                    "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 2048,
                    "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": false]
        }
        do {
            return try LlamaConfig(json: json, path: "synthetic \(rawValue)")
        } catch {
            preconditionFailure("built-in config of \(rawValue) is invalid: \(error)")
        }
    }

    /// The bits of each of `groups` groups at target `bits`, as SliM-LLM allocates them: a quarter
    /// at bits − 1, a quarter at bits + 1, the rest at bits (mean exactly `bits`), shuffled.
    /// - Precondition: 2 ≤ bits ≤ 7.
    public static func bitMix(groups: Int, bits: Int, seed: UInt64) -> [UInt8] {
        precondition((2...7).contains(bits), "bitMix: target bits \(bits) outside 2…7")
        let quarter = groups / 4
        var mix = [UInt8](repeating: UInt8(bits), count: groups)
        for i in 0..<quarter {
            mix[i] = UInt8(bits - 1)
            mix[groups - 1 - i] = UInt8(bits + 1)
        }
        var rng = SplitMix64(seed: seed)
        for i in stride(from: groups - 1, to: 0, by: -1) {
            mix.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return mix
    }
}

extension CUDAModel {
    /// A random packed model of `shape` at an average of `bits` bits per weight (groups of
    /// `groupSize`, bit mix from `SyntheticModel.bitMix`), fp16 embedding and classifier.
    public static func synthetic(_ shape: SyntheticModel, bits: Int, groupSize: Int = 128, context: CUDAContext,
                                 capacity: Int, maxTokens: Int = 512, kvCache: KVCacheType = .f32,
                                 seed: UInt64 = 1) throws(CUDAError) -> CUDAModel {
        let config = shape.config
        let model = try CUDAModel(context: context, config: config, groupSize: groupSize, capacity: capacity,
                                  maxTokens: min(maxTokens, capacity), kvCache: kvCache)
        var rng = SplitMix64(seed: seed)
        let hidden = config.hiddenSize, vocab = config.vocabSize
        try model.setEmbedding(.f16(randomHalves(vocab * hidden, scale: 1, rng: &rng)), tied: false)
        let ones = [Float](repeating: 1, count: hidden)
        let layout = TensorLayout(config: config, packedGroupSize: groupSize)
        for l in 0..<config.numHiddenLayers {
            try model.setNorm(layer: l, which: 0, ones)
            try model.setNorm(layer: l, which: 1, ones)
            for module in layout.linearModules(layer: l) {
                let groups = (module.inFeatures + groupSize - 1) / groupSize
                let mix = SyntheticModel.bitMix(groups: groups, bits: bits, seed: rng.next())
                let packed = GPUPackedLayout.random(rows: module.outFeatures, columns: module.inFeatures,
                                                    groupSize: groupSize, bits: mix,
                                                    weightStd: 1 / Float(module.inFeatures).squareRoot(), seed: rng.next())
                try model.setLinear(layer: l, kind: module.kind, try .packed(packed, context: context))
            }
        }
        try model.setNorm(layer: -1, which: 0, ones)
        let head = CUDADenseWeights.f16(randomHalves(vocab * hidden, scale: 1 / Float(hidden).squareRoot(), rng: &rng))
        try model.setLinear(layer: -1, kind: nil, try .dense(head, rows: vocab, columns: hidden, context: context))
        return model
    }

    /// `count` fp16 values uniform in [−scale, scale).
    static func randomHalves(_ count: Int, scale: Float, rng: inout SplitMix64) -> [UInt16] {
        [UInt16](unsafeUninitializedCapacity: count) { out, n in
            for i in 0..<count {
                let u = Float(rng.next() >> 40) / Float(1 << 24)
                out[i] = Kernels.Reference.f32ToF16((2 * u - 1) * scale)
            }
            n = count
        }
    }
}
