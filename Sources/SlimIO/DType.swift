/// Element types of stored tensors, named as in the safetensors header.
public enum DType: String, Sendable, CaseIterable, Equatable {
    case f64 = "F64"
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case i64 = "I64"
    case i32 = "I32"
    case i16 = "I16"
    case i8 = "I8"
    case u8 = "U8"
    case u16 = "U16"
    case u32 = "U32"
    case u64 = "U64"
    case bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// True for the floating-point types a model's weights may use.
    public var isFloatingPoint: Bool { self == .f64 || self == .f32 || self == .f16 || self == .bf16 }
}

/// A named view of one stored tensor: element type, shape (row-major, outermost first) and its
/// raw little-endian bytes.
///
/// The bytes belong to `owner` (the tensor source, a memory map, a decoded buffer), which the
/// view retains: a view stays readable after the source that produced it has gone out of
/// scope. Swift may end an object's lifetime right after its last use, so read the bytes
/// while the view itself is still in use (a later use of the view, or `withBytes`, which
/// extends the owner's lifetime over the closure); a raw `bytes` pointer copied out of a view
/// that is no longer used is not guaranteed to stay valid in optimized builds.
public struct TensorView: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let bytes: UnsafeRawBufferPointer
    /// The object whose storage `bytes` points into, kept alive by this view. Nil only for
    /// views over memory the caller manages itself (e.g. a test's local buffer).
    public let owner: AnyObject?

    /// - Parameter owner: the object that owns the memory behind `bytes`. Every
    ///   `TensorSource` passes itself (or the object holding the bytes); nil is for callers
    ///   that keep the memory alive themselves.
    public init(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer, owner: AnyObject? = nil) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
        self.owner = owner
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// Calls `body` with the bytes, guaranteeing that their owner stays alive until it returns.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withExtendedLifetime(owner) { try body(bytes) }
    }
}

/// Anything that serves tensors by name: a safetensors file, a sharded checkpoint, an imported
/// GGUF model. Views retain the source (see `TensorView.owner`).
public protocol TensorSource: AnyObject {
    /// Tensor names in storage order.
    var tensorNames: [String] { get }
    /// The tensor called `name`, or nil if there is none. Implementations set the view's
    /// `owner` to themselves (or to the object that owns the bytes).
    func tensor(_ name: String) -> TensorView?
    /// Element type and shape of `name` as `tensor(_:)` would report them, or nil when
    /// `tensor(_:)` would return nil, without producing the data (validation calls this for
    /// every tensor: an imported GGUF must not be dequantized just to check shapes).
    func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])?
}

extension TensorSource {
    /// Default: through `tensor(_:)`, which is free for memory-mapped sources. Sources whose
    /// views cost work to produce (decoding, conversion) must override this.
    public func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])? {
        tensor(name).map { ($0.dtype, $0.shape) }
    }
}
