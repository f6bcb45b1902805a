import SlimIO
import SlimModel
import SlimPacking

// MARK: - One decoder layer

/// The weights of one decoder layer: two RMSNorm vectors and seven linear operators.
///
/// The operators can be swapped one at a time (`replace(_:with:)`), which is how the quantizer
/// evaluates a layer with fake-quantized weights and how a packed backend plugs in. Replacing
/// an operator while a forward pass is running on the same model is not allowed.
public final class LlamaLayerWeights: @unchecked Sendable {
    /// Decoder layer index.
    public let index: Int
    /// `input_layernorm.weight` `[hidden]`.
    public let inputNorm: FloatTensor
    /// `post_attention_layernorm.weight` `[hidden]`.
    public let postAttentionNorm: FloatTensor
    /// Indexed by `LinearKind` order (q, k, v, o, gate, up, down).
    private var operators: [any LinearOperator]

    /// - Precondition: `linears` has one operator per `LinearKind`, in `LinearKind.allCases` order.
    public init(index: Int, inputNorm: FloatTensor, postAttentionNorm: FloatTensor, linears: [any LinearOperator]) {
        precondition(linears.count == LinearKind.allCases.count,
                     "LlamaLayerWeights: expected \(LinearKind.allCases.count) linear operators, got \(linears.count)")
        self.index = index
        self.inputNorm = inputNorm
        self.postAttentionNorm = postAttentionNorm
        operators = linears
    }

    /// The operator for projection `kind`.
    public subscript(kind: LinearKind) -> any LinearOperator {
        operators[Self.slot(kind)]
    }

    /// The fp32 weight of projection `kind` when it is a `DenseLinear`, else nil.
    public func denseWeight(_ kind: LinearKind) -> FloatTensor? {
        (operators[Self.slot(kind)] as? DenseLinear)?.weight
    }

    /// Swaps in `op` for projection `kind` (e.g. a fake-quantized `DenseLinear` or a packed
    /// operator). Returns the previous operator so the caller can restore it.
    /// - Throws: `RuntimeError` when `op`'s feature counts differ from the current operator's.
    @discardableResult
    public func replace(_ kind: LinearKind, with op: any LinearOperator) throws(RuntimeError) -> any LinearOperator {
        let slot = Self.slot(kind)
        let old = operators[slot]
        guard op.inFeatures == old.inFeatures, op.outFeatures == old.outFeatures else {
            throw RuntimeError("layer \(index) \(kind.rawValue): replacement is \(op.outFeatures)×\(op.inFeatures), "
                + "expected \(old.outFeatures)×\(old.inFeatures)")
        }
        operators[slot] = op
        return old
    }

    private static func slot(_ kind: LinearKind) -> Int {
        switch kind {
        case .qProj: return 0
        case .kProj: return 1
        case .vProj: return 2
        case .oProj: return 3
        case .gateProj: return 4
        case .upProj: return 5
        case .downProj: return 6
        }
    }
}

// MARK: - Whole model

/// Every weight of a LLaMA-family model, ready for the forward pass.
///
/// F32 tensors are used in place from the source's memory map (the source stays alive as long
/// as any tensor does). F16 and BF16 linear weights and the embedding are either converted once
/// to fp32 (`DenseStorage.fp32`) or used in place as 16-bit (`.native`, the same products bit for
/// bit); norms, biases and F64 tensors are always fp32. With tied embeddings the classifier
/// shares the embedding tensor, so it is never duplicated.
public final class LlamaWeights: @unchecked Sendable {
    public let config: LlamaConfig
    /// `model.embed_tokens.weight` `[vocab, hidden]`.
    public let embedding: DenseMatrix
    public let layers: [LlamaLayerWeights]
    /// `model.norm.weight` `[hidden]`.
    public let finalNorm: FloatTensor
    /// The classifier `[vocab, hidden]` (the embedding when tied).
    public let lmHead: any LinearOperator

    /// Builds the weights from `source`, first checking that it holds exactly the tensors
    /// `config` implies (`TensorLayout.validate`).
    /// - Parameters:
    ///   - path: names the checkpoint in error messages.
    ///   - storage: whether F16/BF16 matrices are widened to fp32 (the default) or kept 16-bit.
    ///   - packedActivations: what packed linears multiply their codes with (`PackedActivations`).
    /// - Throws: `FileError` for missing/misshapen/non-float tensors or inconsistent byte counts.
    public init(config: LlamaConfig, source: any TensorSource, path: String,
                storage: DenseStorage = .fp32, packedActivations: PackedActivations = .fp32) throws(FileError) {
        let layout = TensorLayout(config: config, packedGroupSize: config.packing?.groupSize)
        try layout.validate(source, path: path)
        func view(_ name: String) throws(FileError) -> TensorView {
            // validate() proved presence, shape and dtype; byte counts are checked by the tensors.
            guard let view = source.tensor(name) else { throw FileError(path, "missing tensor \(name)") }
            return view
        }
        func load(_ name: String) throws(FileError) -> FloatTensor {
            try FloatTensor(try view(name), source: source, path: path)
        }
        func matrix(_ name: String) throws(FileError) -> DenseMatrix {
            let v = try view(name)
            if storage == .native, let half = try HalfTensor(v, source: source, path: path) { return .half(half) }
            return .f32(try FloatTensor(v, source: source, path: path))
        }
        self.config = config
        embedding = try matrix(TensorLayout.embedTokens)
        var layers: [LlamaLayerWeights] = []
        layers.reserveCapacity(config.numHiddenLayers)
        for l in 0..<config.numHiddenLayers {
            var linears: [any LinearOperator] = []
            for module in layout.linearModules(layer: l) {
                let bias = try module.biasName.map { (name) throws(FileError) in try load(name) }
                if let groupSize = layout.packedGroupSize {
                    let packed = try PackedLinear(source: source, prefix: PackedFormat.prefix(ofWeight: module.weightName),
                                                  rows: module.outFeatures, columns: module.inFeatures,
                                                  groupSize: groupSize, path: path)
                    linears.append(PackedLinearOperator(PackedMatrix(packed), bias: bias, activations: packedActivations))
                } else {
                    switch try matrix(module.weightName) {
                    case .f32(let w): linears.append(DenseLinear(weight: w, bias: bias))
                    case .half(let w): linears.append(HalfLinear(weight: w, bias: bias))
                    }
                }
            }
            layers.append(LlamaLayerWeights(index: l, inputNorm: try load(TensorLayout.inputNorm(layer: l)),
                                            postAttentionNorm: try load(TensorLayout.postAttentionNorm(layer: l)),
                                            linears: linears))
        }
        self.layers = layers
        finalNorm = try load(TensorLayout.finalNorm)
        // transformers ignores a stored lm_head.weight when the embeddings are tied.
        lmHead = (config.tieWordEmbeddings ? embedding : try matrix(TensorLayout.lmHead)).linear()
    }

    /// The weights of a model opened by `LoadedModel` (already validated there; checked again
    /// cheaply here).
    public convenience init(model: LoadedModel, storage: DenseStorage = .fp32,
                            packedActivations: PackedActivations = .fp32) throws(FileError) {
        try self.init(config: model.config, source: model.weights, path: model.path, storage: storage,
                      packedActivations: packedActivations)
    }

    /// Bytes of fp32 memory this object allocated (converted or copied tensors), not counting
    /// tensors borrowed from the source's memory map (16-bit tensors always are).
    public var ownedBytes: Int {
        var tensors: [FloatTensor] = [finalNorm] + (embedding.fp32.map { [$0] } ?? [])
        for layer in layers {
            tensors += [layer.inputNorm, layer.postAttentionNorm]
            for kind in LinearKind.allCases {
                if let dense = layer[kind] as? DenseLinear {
                    tensors.append(dense.weight)
                    if let b = dense.bias { tensors.append(b) }
                }
            }
        }
        if let head = lmHead as? DenseLinear, head.weight !== embedding.fp32 { tensors.append(head.weight) }
        return tensors.reduce(0) { $0 + ($1.isBorrowed ? 0 : $1.count * MemoryLayout<Float>.stride) }
    }
}
