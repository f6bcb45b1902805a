import SlimKernels
import SlimModel

// MARK: - KV cache

/// Element type of a KV cache (`--kv-cache`).
public enum KVCacheType: String, CaseIterable, Sendable {
    /// fp32: keys and values exactly as the projections and rotary embedding compute them
    /// (Hugging Face's values; the default).
    case f32
    /// fp16, rounded to nearest: half the memory and half the bytes a decode step's attention
    /// reads (llama.cpp's default cache type). Scores, softmax and sums stay fp32. Values beyond
    /// ±65504 become ±infinity.
    case f16
    /// bfloat16, rounded to nearest even: the bytes of fp16, with fp32's exponent range
    /// (no overflow at ±65504) but 8 significant bits instead of 11, so a coarser rounding.
    case bf16

    /// How the cache's elements are stored.
    public var storage: StorageFormat {
        switch self {
        case .f32: .f32
        case .f16: .f16
        case .bf16: .bf16
        }
    }
    /// Bytes per cached element.
    public var byteSize: Int { storage.byteSize }
}

/// Keys (rotary applied) and values of every layer for positions `0 ..< count`, each layer a
/// `[capacity × kvHeads·headDim]` row-major block of `type` elements, so new rows are appended
/// in place and attention reads them with a row stride.
public final class KVCache {
    /// Positions the cache can hold.
    public let capacity: Int
    /// Positions filled.
    public internal(set) var count = 0
    /// Element type of the keys and values.
    public let type: KVCacheType
    let kvDim: Int
    let keys: [UnsafeMutableRawPointer]
    let values: [UnsafeMutableRawPointer]

    /// - Throws: `RuntimeError` when `capacity` is not positive or the cache size overflows.
    public init(config: LlamaConfig, capacity: Int, type: KVCacheType = .f32) throws(RuntimeError) {
        guard capacity > 0 else { throw RuntimeError("KV cache capacity must be positive, got \(capacity)") }
        kvDim = config.kvProjectionSize
        // Sizes come from the caller and the config: refuse products that overflow rather than trap.
        let (perLayer, overflow) = capacity.multipliedReportingOverflow(by: kvDim * type.byteSize)
        let (_, overflowTotal) = perLayer.multipliedReportingOverflow(by: 2 * config.numHiddenLayers)
        guard !overflow, !overflowTotal else {
            throw RuntimeError("KV cache of \(capacity) positions × \(config.numHiddenLayers) layers is too large")
        }
        self.capacity = capacity
        self.type = type
        keys = (0..<config.numHiddenLayers).map { _ in .allocate(byteCount: perLayer, alignment: 64) }
        values = (0..<config.numHiddenLayers).map { _ in .allocate(byteCount: perLayer, alignment: 64) }
    }

    /// Bytes allocated for keys and values.
    public var byteCount: Int { 2 * keys.count * capacity * kvDim * type.byteSize }

    /// Forgets every position (keeps the memory).
    public func reset() { count = 0 }

    /// Forgets positions from `newCount` on (e.g. to reuse a shared prompt prefix).
    /// - Precondition: `0 <= newCount <= count`.
    public func truncate(to newCount: Int) {
        precondition(newCount >= 0 && newCount <= count, "KVCache.truncate: \(newCount) not in 0...\(count)")
        count = newCount
    }

    /// Layer `l`'s storage, for `layerForward`.
    func layer(_ l: Int) -> KVStorage { KVStorage(keys: keys[l], values: values[l], type: type) }

    deinit {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
    }
}

/// One layer's keys and values: `[positions × kvDim]` elements of `type` each.
struct KVStorage {
    let keys: UnsafeMutableRawPointer
    let values: UnsafeMutableRawPointer
    let type: KVCacheType
}

// MARK: - Session

/// Incremental decoding: a prompt is prefilled in batched blocks, then tokens are appended one
/// at a time, each step attending to everything before it through the KV cache. The logits of
/// a step equal those of the same position in a whole-window `forward` (to fp32 rounding).
///
/// Uses its model's scratch memory: one session (or other model call) at a time per model.
public final class InferenceSession {
    public let model: LlamaModel
    public let cache: KVCache
    /// Rows per batched block when prefilling (bounds scratch memory for long prompts).
    public var prefillBlock = 512

    /// The next position (tokens seen so far).
    public var position: Int { cache.count }

    /// - Parameters:
    ///   - capacity: maximum positions held (prompt + generated tokens). The cache is allocated
    ///     up front: `2 · layers · capacity · kvHeads · headDim` elements (SmolLM2-135M: 46 KB
    ///     per position in fp32). Positions beyond `max_position_embeddings` are allowed, as in
    ///     transformers (rotary embeddings extrapolate).
    ///   - kvCache: the cache's element type; by default the model's `kvCacheType`, so a
    ///     session's steps compute what the model's whole-window forward computes.
    /// - Throws: `RuntimeError` for a non-positive or absurd capacity.
    public init(model: LlamaModel, capacity: Int, kvCache: KVCacheType? = nil) throws(RuntimeError) {
        self.model = model
        cache = try KVCache(config: model.config, capacity: capacity, type: kvCache ?? model.kvCacheType)
    }

    /// Forgets the context.
    public func reset() { cache.reset() }

    /// Appends `tokens` at the current position, in blocks of `prefillBlock` rows.
    /// - Returns: logits of the appended rows (`.all`: `[tokens.count × vocab]`), of the last one
    ///   (`.last`, the default), or nothing (`.none`).
    /// - Throws: `RuntimeError` for an out-of-vocabulary id or when the cache would overflow;
    ///   nothing is appended then.
    public func prefill(_ tokens: [Int], logits select: LogitRows = .last) throws(RuntimeError) -> [Float] {
        try model.checkTokens(tokens)
        guard tokens.count <= cache.capacity - cache.count else {
            throw RuntimeError("context full: \(cache.count) + \(tokens.count) tokens exceed the KV cache capacity \(cache.capacity)")
        }
        guard !tokens.isEmpty else { return [] }
        var result: [Float] = []
        var offset = 0
        let block = max(1, prefillBlock)
        while offset < tokens.count {
            let n = min(block, tokens.count - offset)
            let isLast = offset + n == tokens.count
            let blockSelect: LogitRows
            switch select {
            case .all: blockSelect = .all
            case .last: blockSelect = isLast ? .last : .none
            case .none: blockSelect = .none
            }
            result += run(Array(tokens[offset..<(offset + n)]), select: blockSelect)
            offset += n
        }
        return result
    }

    /// Appends one token and returns the next-token logits `[vocab]`.
    /// - Throws: `RuntimeError` for an out-of-vocabulary id or a full cache.
    public func step(_ token: Int) throws(RuntimeError) -> [Float] {
        try prefill([token], logits: .last)
    }

    /// Generates up to `maxNewTokens` tokens after `prompt` (appended to the current context),
    /// stopping early after a token in `stopTokens` (which is included in the result) or when
    /// `onToken` returns false. The last returned token is not fed back, so the context ends
    /// with the token before it (`position` grows by `prompt.count + result.count − 1`).
    /// - Throws: `RuntimeError` for an empty prompt, bad ids, or when the context would
    ///   overflow the cache.
    public func generate(prompt: [Int], maxNewTokens: Int, sampler: inout Sampler,
                         stopTokens: Set<Int> = [], onToken: (Int) -> Bool = { _ in true }) throws(RuntimeError) -> [Int] {
        guard !prompt.isEmpty else { throw RuntimeError("generate: the prompt is empty") }
        return try sampler.generate(maxNewTokens: maxNewTokens, stopTokens: stopTokens, onToken: onToken,
                                    prefill: { () throws(RuntimeError) in try prefill(prompt, logits: .last) },
                                    step: { (token) throws(RuntimeError) in try step(token) })
    }

    /// One block through every layer, then the selected logits.
    private func run(_ tokens: [Int], select: LogitRows) -> [Float] {
        let m = model
        let start = cache.count, rows = tokens.count
        var hidden: HiddenStates
        do {
            hidden = try m.embed(tokens)
        } catch {
            preconditionFailure("tokens were validated: \(error)")
        }
        m.reserveWorkspace(rows: rows)
        hidden.values.withUnsafeMutableBufferPointer { h in
            for l in 0..<m.config.numHiddenLayers {
                m.layerForward(l, hidden: h.baseAddress!, rows: rows, start: start, cache: cache.layer(l),
                               capture: nil)
            }
        }
        cache.count = start + rows
        return m.logits(from: hidden, rows: select)
    }
}
