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

/// Every weight of a LLaMA-family model as fp32, ready for the forward pass.
///
/// F32 tensors are used in place from the source's memory map (the source stays alive as long
/// as any tensor does); F16, BF16 and F64 tensors are converted once. With tied embeddings the
/// classifier shares the embedding tensor, so it is never duplicated.
public final class LlamaWeights: @unchecked Sendable {
    public let config: LlamaConfig
    /// `model.embed_tokens.weight` `[vocab, hidden]`.
    public let embedding: FloatTensor
    public let layers: [LlamaLayerWeights]
    /// `model.norm.weight` `[hidden]`.
    public let finalNorm: FloatTensor
    /// The classifier `[vocab, hidden]` (the embedding when tied).
    public let lmHead: any LinearOperator

    /// Builds the weights from `source`, first checking that it holds exactly the tensors
    /// `config` implies (`TensorLayout.validate`).
    /// - Parameter path: names the checkpoint in error messages.
    /// - Throws: `FileError` for missing/misshapen/non-float tensors or inconsistent byte counts.
    public init(config: LlamaConfig, source: any TensorSource, path: String) throws(FileError) {
        let layout = TensorLayout(config: config, packedGroupSize: config.packing?.groupSize)
        try layout.validate(source, path: path)
        func load(_ name: String) throws(FileError) -> FloatTensor {
            // validate() proved presence, shape and dtype; the byte count is checked here.
            guard let view = source.tensor(name) else { throw FileError(path, "missing tensor \(name)") }
            return try FloatTensor(view, source: source, path: path)
        }
        self.config = config
        embedding = try load(TensorLayout.embedTokens)
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
                    linears.append(PackedLinearOperator(PackedMatrix(packed), bias: bias))
                } else {
                    linears.append(DenseLinear(weight: try load(module.weightName), bias: bias))
                }
            }
            layers.append(LlamaLayerWeights(index: l, inputNorm: try load(TensorLayout.inputNorm(layer: l)),
                                            postAttentionNorm: try load(TensorLayout.postAttentionNorm(layer: l)),
                                            linears: linears))
        }
        self.layers = layers
        finalNorm = try load(TensorLayout.finalNorm)
        // transformers ignores a stored lm_head.weight when the embeddings are tied.
        lmHead = DenseLinear(weight: config.tieWordEmbeddings ? embedding : try load(TensorLayout.lmHead))
    }

    /// The weights of a model opened by `LoadedModel` (already validated there; checked again
    /// cheaply here).
    public convenience init(model: LoadedModel) throws(FileError) {
        try self.init(config: model.config, source: model.weights, path: model.path)
    }

    /// Bytes of fp32 memory this object allocated (converted or copied tensors), not counting
    /// tensors borrowed from the source's memory map.
    public var ownedBytes: Int {
        var tensors: [FloatTensor] = [embedding, finalNorm]
        for layer in layers {
            tensors += [layer.inputNorm, layer.postAttentionNorm]
            for kind in LinearKind.allCases {
                if let dense = layer[kind] as? DenseLinear {
                    tensors.append(dense.weight)
                    if let b = dense.bias { tensors.append(b) }
                }
            }
        }
        if let head = lmHead as? DenseLinear, head.weight !== embedding { tensors.append(head.weight) }
        return tensors.reduce(0) { $0 + ($1.isBorrowed ? 0 : $1.count * MemoryLayout<Float>.stride) }
    }
}
