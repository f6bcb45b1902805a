// The resident GPU model behind `--device cuda`: every weight, the KV cache and the activations
// live on the device; the host sends token ids and receives logits or NLLs.
//
// Device forms: packed linears in the GPU layout; every other linear, the embedding and the
// classifier dense, in fp16 when that is exact for every value (F16 checkpoints) and fp32
// otherwise, so the GPU computes with exactly the CPU's weights; norms fp32; KV cache fp32 (the
// CPU's values) or, asked for, fp16 (half the cache memory and decode-attention bytes).

import CSlimCUDA
import SlimIO
import SlimModel
import SlimPacking
import SlimRuntime

// MARK: - KV cache element type

/// The GPU cache stores `KVCacheType` elements as the C API's weight element types.
extension KVCacheType {
    /// The element type, as the C API names it for weights too.
    var elementType: CUDAWeightType {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        }
    }
    /// The SLIM_CUDA_* dtype.
    var dtype: Int32 { elementType.rawValue }
}

public final class CUDAModel: @unchecked Sendable {
    public let context: CUDAContext
    public let config: LlamaConfig
    /// KV-cache positions (prompt + generated tokens, or the eval window).
    public let capacity: Int
    /// Rows per forward block.
    public let maxTokens: Int
    /// Element type of the KV cache.
    public let kvCache: KVCacheType
    /// Device bytes of the weights (embedding, norms, linears, classifier): what a decode step
    /// streams, besides the embedding row and the KV cache.
    public private(set) var weightBytes = 0
    let handle: OpaquePointer

    /// Creates an empty device model (weights follow through the `set…` calls).
    init(context: CUDAContext, config: LlamaConfig, groupSize: Int?, capacity: Int, maxTokens: Int,
         kvCache: KVCacheType) throws(CUDAError) {
        guard capacity >= 1, maxTokens >= 1 else { throw CUDAError("GPU model: capacity and block size must be positive") }
        self.context = context
        self.config = config
        self.capacity = capacity
        self.maxTokens = maxTokens
        self.kvCache = kvCache
        let rotary = RotaryEmbedding(config: config)
        var cosTable: [Float] = [], sinTable: [Float] = []
        cosTable.reserveCapacity(capacity * config.headDim / 2)
        sinTable.reserveCapacity(capacity * config.headDim / 2)
        for p in 0..<capacity {  // the CPU runtime's own tables: identical rotations
            let (c, s) = rotary.cosSin(position: p)
            cosTable += c
            sinTable += s
        }
        var cfg = slim_cuda_model_config(
            hidden: Int32(config.hiddenSize), intermediate: Int32(config.intermediateSize),
            layers: Int32(config.numHiddenLayers), heads: Int32(config.numAttentionHeads),
            kv_heads: Int32(config.numKeyValueHeads), head_dim: Int32(config.headDim), vocab: Int32(config.vocabSize),
            capacity: Int32(capacity), max_tokens: Int32(maxTokens), group_size: Int32(groupSize ?? 0),
            rms_eps: Float(config.rmsNormEps), kv_dtype: kvCache.dtype)
        var out: OpaquePointer?
        try context.check(context.library.api.model_create(context.handle, &cfg, cosTable, sinTable, &out),
                          "GPU model (\(capacity) positions)")
        handle = out!
    }

    deinit { context.library.api.model_destroy(handle) }

    // MARK: - Weights

    func setEmbedding(_ weights: CUDADenseWeights, tied: Bool) throws(CUDAError) {
        let status = weights.withUnsafeBytes { raw in
            context.library.api.model_set_embedding(handle, weights.type.rawValue, raw.baseAddress, tied ? 1 : 0)
        }
        try context.check(status, "upload of the embedding")
        weightBytes += weights.count * weights.type.byteSize
    }

    /// `layer` −1 is the final norm; `which` 0 = input_layernorm, 1 = post_attention_layernorm.
    func setNorm(layer: Int, which: Int, _ weights: [Float]) throws(CUDAError) {
        try context.check(context.library.api.model_set_norm(handle, Int32(layer), Int32(which), weights),
                          "upload of layer \(layer) norm")
        weightBytes += 4 * weights.count
    }

    /// Moves `linear` into slot `kind` of `layer` (nil kind with layer −1: the classifier).
    func setLinear(layer: Int, kind: LinearKind?, _ linear: CUDALinear) throws(CUDAError) {
        let slot: Int32
        switch kind {
        case .qProj?: slot = 0
        case .kProj?: slot = 1
        case .vProj?: slot = 2
        case .oProj?: slot = 3
        case .gateProj?: slot = 4
        case .upProj?: slot = 5
        case .downProj?: slot = 6
        case nil: slot = 7
        }
        let bytes = linear.weightBytes
        let raw = try linear.release()
        let status = context.library.api.model_set_linear(handle, Int32(layer), slot, raw)
        if status != 0 {
            let message = context.library.lastError()
            context.library.api.linear_destroy(raw)
            throw CUDAError("GPU model: \(message)")
        }
        weightBytes += bytes
    }

    // MARK: - Running

    /// Tokens seen since the last reset.
    public var position: Int {
        var p: Int32 = 0
        _ = context.library.api.model_position(handle, &p)
        return Int(p)
    }

    /// Forgets the context.
    public func reset() { _ = context.library.api.model_reset(handle) }

    /// Appends `tokens` at the current position (in blocks of `maxTokens`).
    /// - Returns: `[tokens.count × vocab]` (`.all`), `[vocab]` (`.last`) or `[]` (`.none`).
    /// - Throws: `CUDAError` for an id outside the vocabulary, a full cache, or a device fault.
    public func forward(_ tokens: [Int], logits select: LogitRows = .last) throws(CUDAError) -> [Float] {
        guard !tokens.isEmpty else { return [] }
        let ids = tokens.map { Int32(clamping: $0) }
        let vocab = config.vocabSize
        let (mode, count): (Int32, Int) = switch select {
        case .none: (0, 0)
        case .last: (1, vocab)
        case .all: (2, tokens.count * vocab)
        }
        var status: Int32 = 0
        let logits = [Float](unsafeUninitializedCapacity: max(count, 1)) { out, initialized in
            status = context.library.api.model_forward(handle, ids, Int32(ids.count), mode, out.baseAddress)
            initialized = count
        }
        try context.check(status, "GPU forward of \(tokens.count) token(s)")
        return logits
    }

    /// −log p(window[t+1] | window[...t]) for t < T−1 of a window evaluated from position 0
    /// (the cache is reset first).
    public func negativeLogLikelihoods(_ window: [Int]) throws(CUDAError) -> [Double] {
        guard window.count >= 2 else { return [] }
        let ids = window.map { Int32(clamping: $0) }
        var status: Int32 = 0
        let nll = [Double](unsafeUninitializedCapacity: window.count - 1) { out, initialized in
            status = context.library.api.model_nll(handle, ids, Int32(ids.count), out.baseAddress)
            initialized = window.count - 1
        }
        try context.check(status, "GPU evaluation of a \(window.count)-token window")
        return nll
    }

    /// Device memory held: weights, KV cache, activations.
    public var deviceBytes: Int { Int(context.library.api.model_device_bytes(handle)) }
}

// MARK: - Loading a checkpoint

extension CUDAModel {
    /// Uploads `model` (plain or slim-packed) straight from its tensors, without building the
    /// CPU runtime's fp32 copies.
    /// - Parameters:
    ///   - capacity: KV-cache positions; `maxTokens`: rows per prefill block; `kvCache`: its elements.
    /// - Throws: `FileError` for bad tensors (naming the file), `CUDAError` for device failures.
    public convenience init(context: CUDAContext, model: LoadedModel, capacity: Int, maxTokens: Int = 512,
                            kvCache: KVCacheType = .f32) throws {
        let config = model.config, source = model.weights, path = model.path
        let groupSize = config.packing?.groupSize
        let layout = TensorLayout(config: config, packedGroupSize: groupSize)
        try layout.validate(source, path: path)
        try self.init(context: context, config: config, groupSize: groupSize, capacity: capacity,
                      maxTokens: min(maxTokens, capacity), kvCache: kvCache)

        func view(_ name: String) throws -> TensorView {
            guard let v = source.tensor(name) else { throw FileError(path, "missing tensor \(name)") }
            return v
        }
        func floats(_ name: String) throws -> [Float] {
            // Not Array(FloatTensor(…).buffer): the temporary tensor may be freed before the copy,
            // which for a converted (F16/BF16) tensor reads freed memory.
            do { return try floatArray(try view(name)) } catch let e as TensorConversionError { throw FileError(path, "\(e)") }
        }
        func dense(_ name: String) throws -> CUDADenseWeights {
            let v = try view(name)
            guard v.dtype == .f16 || v.dtype == .bf16 else { return CUDADenseWeights(exactly: try floats(name)) }
            // Exact as stored: upload the 16-bit values themselves.
            let halves = v.withBytes { raw in
                [UInt16](unsafeUninitializedCapacity: raw.count / 2) { out, n in
                    UnsafeMutableRawBufferPointer(out).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<(raw.count / 2 * 2)]))
                    n = raw.count / 2
                }
            }
            return v.dtype == .f16 ? .f16(halves) : .bf16(halves)
        }

        try setEmbedding(try dense(TensorLayout.embedTokens), tied: config.tieWordEmbeddings)
        for l in 0..<config.numHiddenLayers {
            try setNorm(layer: l, which: 0, try floats(TensorLayout.inputNorm(layer: l)))
            try setNorm(layer: l, which: 1, try floats(TensorLayout.postAttentionNorm(layer: l)))
            for module in layout.linearModules(layer: l) {
                let bias = try module.biasName.map { try floats($0) }
                let linear: CUDALinear
                if let groupSize {
                    let packed = try PackedLinear(source: source, prefix: PackedFormat.prefix(ofWeight: module.weightName),
                                                  rows: module.outFeatures, columns: module.inFeatures,
                                                  groupSize: groupSize, path: path)
                    linear = try .packed(GPUPackedLayout(packed), bias: bias, context: context)
                } else {
                    linear = try .dense(try dense(module.weightName), rows: module.outFeatures,
                                        columns: module.inFeatures, bias: bias, context: context)
                }
                try setLinear(layer: l, kind: module.kind, linear)
            }
        }
        try setNorm(layer: -1, which: 0, try floats(TensorLayout.finalNorm))
        if !config.tieWordEmbeddings {
            try setLinear(layer: -1, kind: nil, try .dense(try dense(TensorLayout.lmHead), rows: config.vocabSize,
                                                            columns: config.hiddenSize, context: context))
        }
    }
}
