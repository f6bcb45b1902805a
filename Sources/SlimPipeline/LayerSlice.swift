import Foundation
import SlimIO
import SlimModel
import SlimRuntime

// One decoder layer of a model as a runnable one-layer LLaMA, so the quantizer holds one layer's
// fp32 weights at a time instead of the whole model (`LlamaWeights(model:)` converts every F16 /
// BF16 tensor to fp32 up front: 28 GB for a 7B checkpoint).

/// A `TensorSource` presenting decoder layer `layer` of `base` as layer 0 of a one-layer model
/// with a one-token vocabulary and tied embeddings. The embedding and final norm are small
/// placeholders (zeros / ones): the quantizer embeds tokens itself and never computes logits.
/// Layer tensors are the base's views, so F32 checkpoints stay zero-copy.
final class LayerSliceSource: TensorSource, @unchecked Sendable {
    let base: TensorSource
    let layer: Int
    /// The one-layer config the slice validates against.
    let config: LlamaConfig
    let tensorNames: [String]
    /// Placeholder tensors, in memory this object owns (freed at deinit).
    private let placeholders: [String: (shape: [Int], bytes: UnsafeMutableRawBufferPointer)]

    /// - Throws: `FileError` naming `path` when the one-layer config cannot be built (it is
    ///   derived from an already validated config, so this only fails on internal
    ///   inconsistencies).
    init(base: TensorSource, config full: LlamaConfig, layer: Int, path: String) throws(FileError) {
        self.base = base
        self.layer = layer
        guard var object = full.toJSON().object else { throw FileError(path, "config did not serialize to an object") }
        object["num_hidden_layers"] = .int(1)
        object["vocab_size"] = .int(1)
        object["tie_word_embeddings"] = .bool(true)
        object["bos_token_id"] = .null
        object["eos_token_id"] = .null
        config = try LlamaConfig(json: .object(object), path: path)
        let h = full.hiddenSize
        func filled(_ value: Float) -> UnsafeMutableRawBufferPointer {
            let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: h * MemoryLayout<Float>.stride,
                                                               alignment: MemoryLayout<Float>.alignment)
            bytes.bindMemory(to: Float.self).initialize(repeating: value)
            return bytes
        }
        placeholders = [
            TensorLayout.embedTokens: ([1, h], filled(0)),
            TensorLayout.finalNorm: ([h], filled(1)),
        ]
        let layout = TensorLayout(config: config)
        tensorNames = layout.expectedTensors.map(\.name)
    }

    deinit {
        for p in placeholders.values { p.bytes.deallocate() }
    }

    /// The base model's name of a slice tensor: "model.layers.0.x" → "model.layers.<layer>.x".
    func baseName(_ name: String) -> String? {
        let prefix = TensorLayout.layerPrefix(0)
        guard name.hasPrefix(prefix) else { return nil }
        return TensorLayout.layerPrefix(layer) + name.dropFirst(prefix.count)
    }

    func tensor(_ name: String) -> TensorView? {
        if let p = placeholders[name] {
            // The view retains `self`, which owns the bytes.
            return TensorView(name: name, dtype: .f32, shape: p.shape, bytes: UnsafeRawBufferPointer(p.bytes), owner: self)
        }
        guard let real = baseName(name) else { return nil }
        return base.tensor(real)
    }

    func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])? {
        if let p = placeholders[name] { return (.f32, p.shape) }
        guard let real = baseName(name) else { return nil }
        return base.tensorInfo(real)
    }
}

/// The fp32 weights and a runtime for one decoder layer.
final class LayerRunner {
    let layer: Int
    let weights: LlamaWeights
    let model: LlamaModel

    /// Loads decoder layer `layer` of `source` (F32 views borrowed, other dtypes converted).
    init(source: TensorSource, config: LlamaConfig, layer: Int, path: String, threads: Int) throws {
        let slice = try LayerSliceSource(base: source, config: config, layer: layer, path: path)
        self.layer = layer
        weights = try LlamaWeights(config: slice.config, source: slice, path: path)
        model = LlamaModel(weights: weights, threads: threads)
        try Self.checkFinite(weights.layers[0], config: config, layer: layer, path: path)
    }

    /// NaN or ±Inf in a weight would turn the Hessians and every later layer into NaN and give
    /// a garbage checkpoint hours later: such a layer is refused, naming the tensor and element.
    static func checkFinite(_ weights: LlamaLayerWeights, config: LlamaConfig, layer: Int, path: String) throws(FileError) {
        var tensors: [(String, FloatTensor)] = [(TensorLayout.inputNorm(layer: layer), weights.inputNorm),
                                                (TensorLayout.postAttentionNorm(layer: layer), weights.postAttentionNorm)]
        for m in TensorLayout(config: config).linearModules(layer: layer) {
            if let w = weights.denseWeight(m.kind) { tensors.append((m.weightName, w)) }
            if let b = (weights[m.kind] as? DenseLinear)?.bias, let name = m.biasName { tensors.append((name, b)) }
        }
        for (name, t) in tensors {
            let values = UnsafeBufferPointer(start: t.pointer, count: t.count)
            guard let i = values.firstIndex(where: { !$0.isFinite }) else { continue }
            let position = t.shape.count == 2 ? "[\(i / t.shape[1]), \(i % t.shape[1])]" : "[\(i)]"
            throw FileError(path, "tensor \(name) holds \(values[i]) at \(position): the weights are corrupt (NaN/Inf)")
        }
    }

    var layerWeights: LlamaLayerWeights { weights.layers[0] }

    /// The fp32 weight `[out, in]` of projection `kind` (the operators start as `DenseLinear`).
    func denseWeight(_ kind: LinearKind) throws -> FloatTensor {
        guard let w = layerWeights.denseWeight(kind) else {
            throw RuntimeError("layer \(layer) \(kind.rawValue) is not a dense fp32 operator")
        }
        return w
    }

    /// The bias of projection `kind`, if any.
    func bias(_ kind: LinearKind) -> FloatTensor? {
        (layerWeights[kind] as? DenseLinear)?.bias
    }

    /// Runs the layer in place on one window; `capture` receives the four linear inputs.
    func run(_ hidden: inout HiddenStates, capture: LayerCapture? = nil) {
        model.runLayer(0, hidden: &hidden, capture: capture)
    }
}
