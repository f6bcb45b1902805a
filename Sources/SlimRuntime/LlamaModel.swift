import Foundation
import SlimKernels
import SlimModel

/// The fp32 LLaMA forward pass, matching Hugging Face transformers' `LlamaForCausalLM`
/// (float32, eager attention) to fp32 rounding.
///
/// Three ways in:
/// - whole windows: `forward(_:logits:)` and `negativeLogLikelihoods(_:)`;
/// - layer by layer, for the quantizer: `embed`, `runLayer(_:hidden:capture:)`, `logits(from:rows:)`;
/// - incremental decoding with a KV cache: `InferenceSession`.
///
/// GEMMs use up to `threads` workers; attention is parallel over heads and query tiles.
/// A model owns scratch memory and is not safe for concurrent calls: use one per thread
/// (they may share one `LlamaWeights`).
public final class LlamaModel {
    public let weights: LlamaWeights
    public var config: LlamaConfig { weights.config }
    /// Upper bound on worker threads for every kernel.
    public var threads: Int
    /// How keys and values are stored between the projections and attention: in a whole-window
    /// forward, and by default in an `InferenceSession`'s cache. `.f16`/`.bf16` round them, as
    /// a decode with a 16-bit cache would, so perplexity measures what such decoding computes.
    public var kvCacheType: KVCacheType = .f32
    public let rotary: RotaryEmbedding

    let attention: CausalAttention
    let workspace = Workspace()
    let normEps: Float

    public init(weights: LlamaWeights, threads: Int = Kernels.defaultThreads) {
        self.weights = weights
        self.threads = max(1, threads)
        let c = weights.config
        rotary = RotaryEmbedding(config: c)
        attention = CausalAttention(heads: c.numAttentionHeads, kvHeads: c.numKeyValueHeads, headDim: c.headDim)
        // HF adds the Python-float eps to a float32 tensor: the addition happens in float32.
        normEps = Float(c.rmsNormEps)
    }

    // MARK: - Layer-by-layer API

    /// Embedding rows for `tokens`: `[T × hidden]`.
    /// - Throws: `RuntimeError` for an id outside `0..<vocabSize`.
    public func embed(_ tokens: [Int]) throws(RuntimeError) -> HiddenStates {
        try checkTokens(tokens)
        let h = config.hiddenSize
        var values = [Float](repeating: 0, count: tokens.count * h)
        values.withUnsafeMutableBufferPointer { out in
            for (t, id) in tokens.enumerated() {
                weights.embedding.copyRow(id, into: out.baseAddress! + t * h)
            }
        }
        return HiddenStates(values: values, rows: tokens.count, cols: h)
    }

    /// Runs decoder layer `layer` on a whole window (positions `0 ..< hidden.rows`), in place.
    /// `capture`, when given, receives the layer's four distinct linear inputs (see
    /// `LinearInput`) before the projections that consume them run.
    /// - Precondition: `layer` is a valid index and `hidden.cols == hiddenSize`.
    public func runLayer(_ layer: Int, hidden: inout HiddenStates, capture: LayerCapture? = nil) {
        precondition(layer >= 0 && layer < config.numHiddenLayers, "runLayer: layer \(layer) out of range")
        precondition(hidden.cols == config.hiddenSize, "runLayer: hidden has \(hidden.cols) columns, expected \(config.hiddenSize)")
        let rows = hidden.rows
        guard rows > 0 else { return }
        reserveWorkspace(rows: rows)
        // The window's keys and values in the workspace, stored as a cache of `kvCacheType` would.
        let ws = workspace
        let storage = KVStorage(keys: UnsafeMutableRawPointer(ws.k.pointer), values: UnsafeMutableRawPointer(ws.v.pointer),
                                type: kvCacheType)
        hidden.values.withUnsafeMutableBufferPointer { h in
            layerForward(layer, hidden: h.baseAddress!, rows: rows, start: 0, cache: storage, capture: capture)
        }
    }

    /// Final RMSNorm and classifier for the chosen rows of `hidden`: `[rows × vocab]`
    /// (`.all`), `[vocab]` (`.last`), or empty (`.none`, or zero rows).
    public func logits(from hidden: HiddenStates, rows: LogitRows = .all) -> [Float] {
        precondition(hidden.cols == config.hiddenSize, "logits: hidden has \(hidden.cols) columns, expected \(config.hiddenSize)")
        return hidden.values.withUnsafeBufferPointer { h in
            logits(hidden: h.baseAddress!, rows: hidden.rows, select: rows)
        }
    }

    // MARK: - Whole windows

    /// The logits of `tokens` as one window starting at position 0.
    /// - Returns: `[T × vocab]` row-major (`.all`), the last row (`.last`), or empty (`.none`).
    ///   For long windows and large vocabularies `.all` is big (T·vocab·4 bytes): to score a
    ///   window prefer `negativeLogLikelihoods`, which never holds more than a block of rows.
    /// - Throws: `RuntimeError` for an out-of-vocabulary id.
    public func forward(_ tokens: [Int], logits select: LogitRows = .all) throws(RuntimeError) -> [Float] {
        var hidden = try embed(tokens)
        for l in 0..<config.numHiddenLayers { runLayer(l, hidden: &hidden) }
        return logits(from: hidden, rows: select)
    }

    /// Next-token negative log-likelihoods of a window: element t is −log p(tokens[t+1] |
    /// tokens[...t]) for t in 0 ..< T−1 (empty for T < 2), from fp32 logits with the
    /// log-sum-exp accumulated in Double.
    public func negativeLogLikelihoods(_ tokens: [Int]) throws(RuntimeError) -> [Double] {
        var hidden = try embed(tokens)
        for l in 0..<config.numHiddenLayers { runLayer(l, hidden: &hidden) }
        return try negativeLogLikelihoods(hidden: hidden, targets: Array(tokens.dropFirst()))
    }

    /// −log softmax(logits(row t))[targets[t]] for t in 0 ..< targets.count, computing the
    /// classifier a block of rows at a time.
    /// - Throws: `RuntimeError` when there are more targets than rows or a target is outside
    ///   the vocabulary.
    public func negativeLogLikelihoods(hidden: HiddenStates, targets: [Int]) throws(RuntimeError) -> [Double] {
        guard targets.count <= hidden.rows else {
            throw RuntimeError("\(targets.count) targets for \(hidden.rows) rows of hidden states")
        }
        precondition(hidden.cols == config.hiddenSize, "negativeLogLikelihoods: hidden has \(hidden.cols) columns, expected \(config.hiddenSize)")
        let vocab = config.vocabSize, h = config.hiddenSize
        for (i, id) in targets.enumerated() where id < 0 || id >= vocab {
            throw RuntimeError("target id \(id) at position \(i) is outside the vocabulary (0..<\(vocab))")
        }
        let block = 64
        var result: [Double] = []
        result.reserveCapacity(targets.count)
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: vocab)
        defer { scratch.deallocate() }
        hidden.values.withUnsafeBufferPointer { hbuf in
            var r0 = 0
            while r0 < targets.count {
                let n = min(block, targets.count - r0)
                let rows = logits(hidden: hbuf.baseAddress! + r0 * h, rows: n, select: .all)
                rows.withUnsafeBufferPointer { lbuf in
                    for r in 0..<n {
                        let row = lbuf.baseAddress! + r * vocab
                        result.append(Self.logSumExp(row, count: vocab, scratch: scratch) - Double(row[targets[r0 + r]]))
                    }
                }
                r0 += n
            }
        }
        return result
    }

    // MARK: - Internals

    func checkTokens(_ tokens: [Int]) throws(RuntimeError) {
        let vocab = config.vocabSize
        for (i, id) in tokens.enumerated() where id < 0 || id >= vocab {
            throw RuntimeError("token id \(id) at position \(i) is outside the vocabulary (0..<\(vocab))")
        }
    }

    func reserveWorkspace(rows: Int) {
        let c = config
        workspace.reserve(rows: rows, hidden: c.hiddenSize, qDim: c.qProjectionSize,
                          kvDim: c.kvProjectionSize, intermediate: c.intermediateSize)
    }

    /// One decoder layer on `rows` rows at positions `start ..< start + rows`.
    /// `cache` holds `[start + rows × kvDim]` keys and values: earlier positions already filled;
    /// this block's are written at rows `start ..< start + rows`.
    func layerForward(_ l: Int, hidden: UnsafeMutablePointer<Float>, rows: Int, start: Int,
                      cache: KVStorage, capture: LayerCapture?) {
        let c = config, w = weights.layers[l], ws = workspace
        let hDim = c.hiddenSize, qDim = c.qProjectionSize, kvDim = c.kvProjectionSize, iDim = c.intermediateSize
        func emit(_ input: LinearInput, _ p: UnsafeMutablePointer<Float>, _ cols: Int) {
            capture?(CapturedInput(input: input, layer: l, rows: rows, cols: cols,
                                   values: UnsafeBufferPointer(start: p, count: rows * cols)))
        }

        // Attention block.
        Kernels.rmsNorm(x: hidden, weight: w.inputNorm.pointer, output: ws.normed.pointer, rows: rows, n: hDim, eps: normEps)
        emit(.attention, ws.normed.pointer, hDim)
        // An fp32 cache takes the projections' outputs in place; a 16-bit one gets them rounded
        // from fp32 scratch after the rotary embedding (computed in fp32 either way).
        let offset = start * kvDim * cache.type.byteSize
        let inPlace = cache.type == .f32
        if !inPlace { ws.reserveHalfCacheScratch(rows * kvDim) }
        let newKeys = inPlace ? (cache.keys + offset).assumingMemoryBound(to: Float.self) : ws.newKeys.pointer
        let newValues = inPlace ? (cache.values + offset).assumingMemoryBound(to: Float.self) : ws.newValues.pointer
        w[.qProj].apply(x: ws.normed.pointer, rows: rows, out: ws.q.pointer, threads: threads)
        w[.kProj].apply(x: ws.normed.pointer, rows: rows, out: newKeys, threads: threads)
        w[.vProj].apply(x: ws.normed.pointer, rows: rows, out: newValues, threads: threads)
        rotary.apply(ws.q.pointer, rows: rows, rowStride: qDim, heads: c.numAttentionHeads, startPosition: start)
        rotary.apply(newKeys, rows: rows, rowStride: kvDim, heads: c.numKeyValueHeads, startPosition: start)
        if !inPlace {
            Kernels.convertF32(newKeys, to: cache.type.storage, cache.keys + offset, count: rows * kvDim)
            Kernels.convertF32(newValues, to: cache.type.storage, cache.values + offset, count: rows * kvDim)
        }
        attention.run(q: ws.q.pointer, keys: cache.keys, values: cache.values, format: cache.type.storage,
                      out: ws.attention.pointer, rows: rows, start: start, threads: threads)
        emit(.attentionOutput, ws.attention.pointer, qDim)
        w[.oProj].apply(x: ws.attention.pointer, rows: rows, out: ws.projection.pointer, threads: threads)
        Kernels.add(ws.projection.pointer, into: hidden, count: rows * hDim)

        // MLP block.
        Kernels.rmsNorm(x: hidden, weight: w.postAttentionNorm.pointer, output: ws.normed.pointer, rows: rows, n: hDim, eps: normEps)
        emit(.mlp, ws.normed.pointer, hDim)
        w[.gateProj].apply(x: ws.normed.pointer, rows: rows, out: ws.gate.pointer, threads: threads)
        w[.upProj].apply(x: ws.normed.pointer, rows: rows, out: ws.up.pointer, threads: threads)
        Kernels.siluMul(gate: ws.gate.pointer, up: ws.up.pointer, output: ws.gate.pointer, count: rows * iDim)
        emit(.mlpHidden, ws.gate.pointer, iDim)
        w[.downProj].apply(x: ws.gate.pointer, rows: rows, out: ws.projection.pointer, threads: threads)
        Kernels.add(ws.projection.pointer, into: hidden, count: rows * hDim)
    }

    /// Final norm + classifier for `rows` rows at `hidden` (contiguous, stride hiddenSize).
    func logits(hidden: UnsafePointer<Float>, rows: Int, select: LogitRows) -> [Float] {
        let h = config.hiddenSize, vocab = config.vocabSize
        let first: Int, count: Int
        switch select {
        case .none: return []
        case .all: (first, count) = (0, rows)
        case .last: (first, count) = (max(0, rows - 1), min(rows, 1))
        }
        guard count > 0 else { return [] }
        let normed = UnsafeMutablePointer<Float>.allocate(capacity: count * h)
        defer { normed.deallocate() }
        Kernels.rmsNorm(x: hidden + first * h, weight: weights.finalNorm.pointer, output: normed,
                        rows: count, n: h, eps: normEps)
        return [Float](unsafeUninitializedCapacity: count * vocab) { out, initialized in
            weights.lmHead.apply(x: normed, rows: count, out: out.baseAddress!, threads: threads)
            initialized = count * vocab
        }
    }

    /// log Σ exp(x) in Double for one row (max-shifted; `scratch` holds `count` floats).
    static func logSumExp(_ x: UnsafePointer<Float>, count: Int, scratch: UnsafeMutablePointer<Float>) -> Double {
        var m = -Float.infinity
        for i in 0..<count where x[i] > m { m = x[i] }
        guard m.isFinite else { return Double(m) }
        for i in 0..<count { scratch[i] = x[i] - m }
        Kernels.exp(scratch, output: scratch, count: count)
        var sum = 0.0
        for i in 0..<count { sum += Double(scratch[i]) }
        return Double(m) + Foundation.log(sum)
    }
}
