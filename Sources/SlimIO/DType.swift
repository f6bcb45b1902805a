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
/// raw little-endian bytes. The bytes are owned by the source (often a memory map) and valid as
/// long as the source is alive.
public struct TensorView: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let bytes: UnsafeRawBufferPointer

    public init(name: String, dtype: DType, shape: [Int], bytes: UnsafeRawBufferPointer) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    public var elementCount: Int { shape.reduce(1, *) }
}

/// Anything that serves tensors by name: a safetensors file, a sharded checkpoint, an imported
/// GGUF model. Views stay valid while the source object is alive.
public protocol TensorSource: AnyObject {
    /// Tensor names in storage order.
    var tensorNames: [String] { get }
    /// The tensor called `name`, or nil if there is none.
    func tensor(_ name: String) -> TensorView?
}
