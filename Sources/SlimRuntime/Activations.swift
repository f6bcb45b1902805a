import SlimModel

// MARK: - Hidden states

/// The residual stream of a window: `rows` token positions × `cols` (= hidden size) features,
/// row-major. Produced by `LlamaModel.embed`, advanced by `runLayer`, consumed by `logits`.
public struct HiddenStates: Sendable, Equatable {
    public var values: [Float]
    public let rows: Int
    public let cols: Int

    /// - Precondition: `values.count == rows · cols`.
    public init(values: [Float], rows: Int, cols: Int) {
        precondition(rows >= 0 && cols >= 0 && values.count == rows * cols,
                     "HiddenStates: \(values.count) values do not make \(rows)×\(cols)")
        self.values = values
        self.rows = rows
        self.cols = cols
    }

    /// Row `r` as a fresh array.
    public func row(_ r: Int) -> [Float] {
        Array(values[(r * cols)..<((r + 1) * cols)])
    }
}

// MARK: - Capture of linear-layer inputs

/// The four distinct inputs of a decoder layer's seven linear layers (q/k/v share one input
/// and gate/up share another), in the order the forward pass produces them.
public enum LinearInput: String, CaseIterable, Sendable {
    /// `input_layernorm(hidden)`: the input of q_proj, k_proj and v_proj. `[T × hidden]`.
    case attention
    /// The concatenated attention heads: the input of o_proj. `[T × heads·headDim]`.
    case attentionOutput
    /// `post_attention_layernorm(hidden)`: the input of gate_proj and up_proj. `[T × hidden]`.
    case mlp
    /// `silu(gate) · up`: the input of down_proj. `[T × intermediate]`.
    case mlpHidden

    /// The input feeding projection `kind`.
    public init(_ kind: LinearKind) {
        switch kind {
        case .qProj, .kProj, .vProj: self = .attention
        case .oProj: self = .attentionOutput
        case .gateProj, .upProj: self = .mlp
        case .downProj: self = .mlpHidden
        }
    }

    /// The projections that read this input.
    public var consumers: [LinearKind] {
        LinearKind.allCases.filter { LinearInput($0) == self }
    }
}

/// One captured input matrix, `rows × cols` row-major. The buffer is the runtime's scratch
/// memory: it is valid only during the capture callback (copy what you keep) and read-only.
public struct CapturedInput {
    public let input: LinearInput
    /// Decoder layer index.
    public let layer: Int
    public let rows: Int
    public let cols: Int
    public let values: UnsafeBufferPointer<Float>
}

/// Receives each distinct linear-layer input of a layer as the forward pass produces it
/// (see `LinearInput`), before the consuming projections run.
public typealias LayerCapture = (CapturedInput) -> Void

// MARK: - Logit selection

/// Which rows of a window to compute logits for.
public enum LogitRows: Sendable, Equatable {
    /// Every row: `[T × vocab]`.
    case all
    /// Only the last row: `[vocab]` (generation; skips the large classifier for the rest).
    case last
    /// No logits (fills the cache only); an empty array is returned.
    case none
}

// MARK: - Scratch memory

/// Reusable activation buffers for up to `capacity` rows. Grown on demand, never shrunk.
final class Workspace {
    private(set) var capacity = 0
    private(set) var normed = Buffer()
    private(set) var q = Buffer()
    private(set) var k = Buffer()
    private(set) var v = Buffer()
    /// A block's fp32 keys and values before they are rounded into a 16-bit cache (sized by
    /// `reserveHalfCacheScratch`, so fp32 caches never allocate them).
    private(set) var newKeys = Buffer()
    private(set) var newValues = Buffer()
    private(set) var attention = Buffer()
    private(set) var projection = Buffer()
    private(set) var gate = Buffer()
    private(set) var up = Buffer()

    /// A raw, uninitialized Float allocation released by its owner.
    struct Buffer {
        var pointer = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        var count = 0

        mutating func resize(_ n: Int) {
            pointer.deallocate()
            pointer = .allocate(capacity: max(n, 1))
            count = n
        }
    }

    func reserve(rows: Int, hidden: Int, qDim: Int, kvDim: Int, intermediate: Int) {
        guard rows > capacity else { return }
        normed.resize(rows * hidden)
        q.resize(rows * qDim)
        k.resize(rows * kvDim)
        v.resize(rows * kvDim)
        attention.resize(rows * qDim)
        projection.resize(rows * hidden)
        gate.resize(rows * intermediate)
        up.resize(rows * intermediate)
        capacity = rows
    }

    /// Grows `newKeys` / `newValues` to at least `count` floats each.
    func reserveHalfCacheScratch(_ count: Int) {
        guard newKeys.count < count else { return }
        newKeys.resize(count)
        newValues.resize(count)
    }

    deinit {
        for b in [normed, q, k, v, newKeys, newValues, attention, projection, gate, up] { b.pointer.deallocate() }
    }
}
