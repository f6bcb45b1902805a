import SlimIO
import SlimPacking

/// One tensor a model must provide: its Hugging Face name and shape (row-major, outermost
/// first; a linear layer's weight is `[out_features, in_features]`).
public struct TensorSpec: Equatable, Sendable {
    public let name: String
    public let shape: [Int]

    public init(name: String, shape: [Int]) {
        self.name = name
        self.shape = shape
    }

    /// Product of the dimensions, saturating at `Int.max`.
    public var elementCount: Int { shape.reduce(1) { TensorLayout.saturatingMultiply($0, $1) } }
}

/// The seven linear layers of a LLaMA decoder layer, in the order the reference quantizes them
/// (attention first, then the MLP).
public enum LinearKind: String, CaseIterable, Sendable {
    case qProj = "q_proj"
    case kProj = "k_proj"
    case vProj = "v_proj"
    case oProj = "o_proj"
    case gateProj = "gate_proj"
    case upProj = "up_proj"
    case downProj = "down_proj"

    /// The sub-module holding it: "self_attn" or "mlp".
    public var block: String {
        switch self {
        case .qProj, .kProj, .vProj, .oProj: return "self_attn"
        case .gateProj, .upProj, .downProj: return "mlp"
        }
    }

    public var isAttention: Bool { block == "self_attn" }
}

/// One linear layer of one decoder layer, with the tensor names it uses.
public struct LinearModule: Equatable, Sendable {
    public let layer: Int
    public let kind: LinearKind
    /// Module path, e.g. "model.layers.3.self_attn.q_proj".
    public let name: String
    public let outFeatures: Int
    public let inFeatures: Int
    /// True when the config gives this projection a bias.
    public let hasBias: Bool

    /// "<name>.weight", shape `[outFeatures, inFeatures]`.
    public var weightName: String { name + ".weight" }
    /// "<name>.bias" (shape `[outFeatures]`) when `hasBias`.
    public var biasName: String? { hasBias ? name + ".bias" : nil }
}

/// The tensors a LLaMA-family checkpoint holds for a given config, in Hugging Face naming, and
/// the check that a `TensorSource` provides exactly those.
///
/// Checked before any work starts, so a wrong or truncated checkpoint fails in milliseconds with
/// every problem listed, instead of hours into a quantization run.
public struct TensorLayout: Sendable {
    public let config: LlamaConfig
    /// Group size of a slim-packed checkpoint (its linears are stored as packed tensors, see
    /// SlimPacking's `PackedFormat`), or nil for plain floating-point weights.
    public let packedGroupSize: Int?

    public init(config: LlamaConfig, packedGroupSize: Int? = nil) {
        self.config = config
        self.packedGroupSize = packedGroupSize
    }

    // MARK: Names

    public static let embedTokens = "model.embed_tokens.weight"
    public static let finalNorm = "model.norm.weight"
    public static let lmHead = "lm_head.weight"

    /// "model.layers.<layer>."
    public static func layerPrefix(_ layer: Int) -> String { "model.layers.\(layer)." }

    public static func inputNorm(layer: Int) -> String { layerPrefix(layer) + "input_layernorm.weight" }
    public static func postAttentionNorm(layer: Int) -> String { layerPrefix(layer) + "post_attention_layernorm.weight" }

    /// True for tensors that old checkpoints carry but that hold no parameters: the rotary
    /// inverse frequencies `model.layers.N.self_attn.rotary_emb.inv_freq` (recomputed from
    /// the config). They are skipped by `validate` and by every consumer.
    public static func isTolerated(_ name: String) -> Bool {
        let prefix = "model.layers."
        let suffix = ".self_attn.rotary_emb.inv_freq"
        guard name.hasPrefix(prefix), name.hasSuffix(suffix) else { return false }
        let middle = name.utf8.dropFirst(prefix.utf8.count).dropLast(suffix.utf8.count)
        return !middle.isEmpty && middle.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }
    }

    // MARK: Linear modules

    /// The seven linear layers of decoder layer `layer`, in `LinearKind` order.
    public func linearModules(layer: Int) -> [LinearModule] {
        let c = config
        return LinearKind.allCases.map { kind in
            let (out, inp): (Int, Int)
            switch kind {
            case .qProj: (out, inp) = (c.qProjectionSize, c.hiddenSize)
            case .kProj, .vProj: (out, inp) = (c.kvProjectionSize, c.hiddenSize)
            case .oProj: (out, inp) = (c.hiddenSize, c.qProjectionSize)
            case .gateProj, .upProj: (out, inp) = (c.intermediateSize, c.hiddenSize)
            case .downProj: (out, inp) = (c.hiddenSize, c.intermediateSize)
            }
            return LinearModule(layer: layer, kind: kind,
                                name: Self.layerPrefix(layer) + kind.block + "." + kind.rawValue,
                                outFeatures: out, inFeatures: inp,
                                hasBias: kind.isAttention ? c.attentionBias : c.mlpBias)
        }
    }

    /// Every linear layer of the model, layer by layer (the quantizer's iteration order).
    public var linearModules: [LinearModule] {
        (0..<config.numHiddenLayers).flatMap { linearModules(layer: $0) }
    }

    // MARK: Expected tensors

    /// The tensors of decoder layer `layer`.
    public func layerTensors(_ layer: Int) -> [TensorSpec] {
        var specs = [TensorSpec(name: Self.inputNorm(layer: layer), shape: [config.hiddenSize])]
        for m in linearModules(layer: layer) {
            // HF order inside a layer: attention, then norms around the MLP; the order here
            // only affects how problems are listed.
            if m.kind == .gateProj {
                specs.append(TensorSpec(name: Self.postAttentionNorm(layer: layer), shape: [config.hiddenSize]))
            }
            specs.append(TensorSpec(name: m.weightName, shape: [m.outFeatures, m.inFeatures]))
            if let bias = m.biasName { specs.append(TensorSpec(name: bias, shape: [m.outFeatures])) }
        }
        return specs
    }

    /// Every tensor the checkpoint must hold, in model order. When the embeddings are tied,
    /// `lm_head.weight` is not listed (it may still be present: see `validate`).
    public var expectedTensors: [TensorSpec] {
        var specs = [TensorSpec(name: Self.embedTokens, shape: [config.vocabSize, config.hiddenSize])]
        for layer in 0..<config.numHiddenLayers { specs += layerTensors(layer) }
        specs.append(TensorSpec(name: Self.finalNorm, shape: [config.hiddenSize]))
        if !config.tieWordEmbeddings {
            specs.append(TensorSpec(name: Self.lmHead, shape: [config.vocabSize, config.hiddenSize]))
        }
        return specs
    }

    /// Parameters of the model (the tied classifier counted once), saturating at `Int.max`.
    public var parameterCount: Int {
        expectedTensors.reduce(0) { Self.saturatingAdd($0, $1.elementCount) }
    }

    static func saturatingMultiply(_ a: Int, _ b: Int) -> Int {
        let (v, o) = a.multipliedReportingOverflow(by: b)
        return o ? Int.max : v
    }

    static func saturatingAdd(_ a: Int, _ b: Int) -> Int {
        let (v, o) = a.addingReportingOverflow(b)
        return o ? Int.max : v
    }
}

// MARK: - Validation

/// One way a checkpoint differs from the layout its config implies.
public enum LayoutProblem: Equatable, Sendable, CustomStringConvertible {
    case missing(name: String, expectedShape: [Int])
    case wrongShape(name: String, shape: [Int], expectedShape: [Int])
    case notFloatingPoint(name: String, dtype: DType)
    case unexpected(name: String, shape: [Int])
    /// A packed linear whose tensors are inconsistent (bit map, shapes, dtypes).
    case invalidPacking(name: String, reason: String)

    public var description: String {
        switch self {
        case .missing(let n, let e): return "missing \(n) \(e)"
        case .wrongShape(let n, let s, let e): return "\(n) has shape \(s), expected \(e)"
        case .notFloatingPoint(let n, let d): return "\(n) is \(d.rawValue), expected a floating-point type"
        case .unexpected(let n, let s): return "unexpected tensor \(n) \(s)"
        case .invalidPacking(let n, let r): return "packed \(n): \(r)"
        }
    }
}

extension TensorLayout {
    /// How many problems `validate` lists in its message before summarizing the rest.
    public static let problemsListed = 6

    /// Every difference between `source` and this layout: missing tensors, wrong shapes,
    /// non-floating element types, and tensors the model would ignore (which usually means
    /// the config and the weights belong to different models). Expected tensors are checked in
    /// model order, then extras in storage order.
    ///
    /// With tied embeddings a stored `lm_head.weight` is accepted when its shape equals the
    /// embedding's (transformers ignores it and uses the embedding). Only metadata is read
    /// (`TensorSource.tensorInfo`), so checking a GGUF import decodes nothing.
    public func problems(in source: TensorSource) -> [LayoutProblem] {
        var problems: [LayoutProblem] = []
        var expectedNames = Set<String>()
        var checks = expectedTensors
        if config.tieWordEmbeddings, source.tensorInfo(Self.lmHead) != nil {
            checks.append(TensorSpec(name: Self.lmHead, shape: [config.vocabSize, config.hiddenSize]))
        }
        var packedWeights = Set<String>()
        if let groupSize = packedGroupSize {
            for m in linearModules {
                packedWeights.insert(m.weightName)
                let prefix = PackedFormat.prefix(ofWeight: m.weightName)
                for suffix in PackedFormat.Suffix.all { expectedNames.insert(prefix + suffix) }
                if let problem = Self.packedProblem(source, prefix: prefix, module: m, groupSize: groupSize) {
                    problems.append(problem)
                }
            }
        }
        for spec in checks where !packedWeights.contains(spec.name) {
            expectedNames.insert(spec.name)
            guard let t = source.tensorInfo(spec.name) else {
                problems.append(.missing(name: spec.name, expectedShape: spec.shape))
                continue
            }
            if t.shape != spec.shape {
                problems.append(.wrongShape(name: spec.name, shape: t.shape, expectedShape: spec.shape))
            } else if !t.dtype.isFloatingPoint {
                problems.append(.notFloatingPoint(name: spec.name, dtype: t.dtype))
            }
        }
        for name in source.tensorNames where !expectedNames.contains(name) && !Self.isTolerated(name) {
            problems.append(.unexpected(name: name, shape: source.tensorInfo(name)?.shape ?? []))
        }
        return problems
    }

    /// The first problem of one packed linear, or nil when its tensors match the geometry its
    /// bit map implies (the small `.bits` tensor is read; the rest is checked from metadata).
    static func packedProblem(_ source: TensorSource, prefix: String, module m: LinearModule,
                              groupSize: Int) -> LayoutProblem? {
        let bitsName = prefix + PackedFormat.Suffix.bits
        let groups = (m.inFeatures + groupSize - 1) / groupSize
        guard let view = source.tensor(bitsName) else { return .missing(name: bitsName, expectedShape: [groups]) }
        guard view.dtype == .u8, view.shape == [groups], view.bytes.count == groups else {
            return .wrongShape(name: bitsName, shape: view.shape, expectedShape: [groups])
        }
        let bits = view.withBytes { Array($0.bindMemory(to: UInt8.self)) }
        let geometry: PackedGeometry
        do {
            geometry = try PackedGeometry(rows: m.outFeatures, columns: m.inFeatures, groupSize: groupSize, bits: bits)
        } catch {
            return .invalidPacking(name: prefix, reason: error.message)
        }
        for (suffix, dtype, shape) in geometry.tensorShapes.dropFirst() {
            guard let t = source.tensorInfo(prefix + suffix) else { return .missing(name: prefix + suffix, expectedShape: shape) }
            guard t.shape == shape else { return .wrongShape(name: prefix + suffix, shape: t.shape, expectedShape: shape) }
            guard t.dtype == dtype else {
                return .invalidPacking(name: prefix + suffix, reason: "is \(t.dtype.rawValue), expected \(dtype.rawValue)")
            }
        }
        return nil
    }

    /// Throws one error listing the first few problems (and how many more) when `source` does
    /// not match this layout exactly. `path` names the checkpoint in the message.
    public func validate(_ source: TensorSource, path: String) throws(FileError) {
        let found = problems(in: source)
        guard !found.isEmpty else { return }
        let c = config
        var counts: [String] = []
        let missing = found.filter { if case .missing = $0 { return true }; return false }.count
        let shapes = found.filter { if case .wrongShape = $0 { return true }; return false }.count
        let dtypes = found.filter { if case .notFloatingPoint = $0 { return true }; return false }.count
        let packing = found.filter { if case .invalidPacking = $0 { return true }; return false }.count
        let extra = found.filter { if case .unexpected = $0 { return true }; return false }.count
        if missing > 0 { counts.append("\(missing) missing") }
        if shapes > 0 { counts.append("\(shapes) with the wrong shape") }
        if dtypes > 0 { counts.append("\(dtypes) not floating-point") }
        if packing > 0 { counts.append("\(packing) with invalid packing") }
        if extra > 0 { counts.append("\(extra) unexpected") }
        var listed = found.prefix(Self.problemsListed).map(\.description).joined(separator: "; ")
        if found.count > Self.problemsListed { listed += "; … and \(found.count - Self.problemsListed) more" }
        throw FileError(path, "tensors do not match the config (\(c.architecture), \(c.numHiddenLayers) layers, "
            + "hidden \(c.hiddenSize), vocab \(c.vocabSize)): \(counts.joined(separator: ", ")): \(listed)")
    }
}
