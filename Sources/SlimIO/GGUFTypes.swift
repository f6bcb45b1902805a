// Value, tensor-type and error types of the GGUF container format (llama.cpp / ggml).
//
// Format reference: ggml/docs/gguf.md and ggml/src/gguf.cpp. All integers are little-endian.
// Layout: magic "GGUF", u32 version, u64 tensor count, u64 metadata count, the metadata
// key/value pairs, the tensor infos, padding to `general.alignment`, then the tensor data.

// MARK: - Metadata values

/// One GGUF metadata value. Arrays may nest (an array of arrays is legal GGUF).
public enum GGUFValue: Equatable, Sendable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case uint64(UInt64)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// The value as an `Int` when it is an integer of any width that fits; nil otherwise
    /// (floats, strings, arrays, and u64 values above `Int.max`).
    public var int: Int? {
        switch self {
        case .uint8(let v): return Int(v)
        case .int8(let v): return Int(v)
        case .uint16(let v): return Int(v)
        case .int16(let v): return Int(v)
        case .uint32(let v): return Int(v)
        case .int32(let v): return Int(v)
        case .uint64(let v): return Int(exactly: v)
        case .int64(let v): return Int(v)
        default: return nil
        }
    }

    /// The value as a `Double` when it is a float or an integer; nil otherwise. A float32 is
    /// widened exactly (9.999999747378752e-06 stays that, not 1e-05).
    public var double: Double? {
        switch self {
        case .float32(let v): return Double(v)
        case .float64(let v): return v
        default: return int.map(Double.init)
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var bool: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var array: [GGUFValue]? { if case .array(let a) = self { return a }; return nil }

    /// The GGUF type name, for error messages ("uint32", "array", ...).
    public var typeName: String {
        switch self {
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .uint16: return "uint16"
        case .int16: return "int16"
        case .uint32: return "uint32"
        case .int32: return "int32"
        case .uint64: return "uint64"
        case .int64: return "int64"
        case .float32: return "float32"
        case .float64: return "float64"
        case .bool: return "bool"
        case .string: return "string"
        case .array: return "array"
        }
    }
}

/// Wire ids of GGUF metadata value types.
public enum GGUFValueType: UInt32, Sendable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6
    case bool = 7, string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Encoded size of a scalar of this type; nil for string and array (variable length).
    var scalarSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }

    /// The fewest bytes one value of this type can occupy (a string needs its u64 length, an
    /// array its u32 element type and u64 count). Used to bound counts before allocating.
    var minimumEncodedSize: Int { scalarSize ?? (self == .string ? 8 : 12) }
}

// MARK: - Tensor element types

/// A ggml tensor element type. Types ggml defines but this tool cannot decode still carry their
/// block layout, so files using them can be opened and validated; ids this table does not know
/// at all become `.unknown(id)` (see `GGUFFile` for how those are handled).
public enum GGMLType: Equatable, Hashable, Sendable, CustomStringConvertible {
    case f32, f16, q4_0, q4_1, q5_0, q5_1, q8_0, q8_1
    case q2_K, q3_K, q4_K, q5_K, q6_K, q8_K
    case iq2_xxs, iq2_xs, iq3_xxs, iq1_s, iq4_nl, iq3_s, iq2_s, iq4_xs
    case i8, i16, i32, i64, f64, iq1_m, bf16, tq1_0, tq2_0, mxfp4
    case unknown(UInt32)

    /// (id, type, elements per block, bytes per block) from ggml's type_traits table. Ids 4, 5
    /// and 31...33, 36...38 were removed from ggml and are deliberately absent.
    private static let table: [(UInt32, GGMLType, Int, Int)] = [
        (0, .f32, 1, 4), (1, .f16, 1, 2), (2, .q4_0, 32, 18), (3, .q4_1, 32, 20),
        (6, .q5_0, 32, 22), (7, .q5_1, 32, 24), (8, .q8_0, 32, 34), (9, .q8_1, 32, 36),
        (10, .q2_K, 256, 84), (11, .q3_K, 256, 110), (12, .q4_K, 256, 144), (13, .q5_K, 256, 176),
        (14, .q6_K, 256, 210), (15, .q8_K, 256, 292), (16, .iq2_xxs, 256, 66), (17, .iq2_xs, 256, 74),
        (18, .iq3_xxs, 256, 98), (19, .iq1_s, 256, 50), (20, .iq4_nl, 32, 18), (21, .iq3_s, 256, 110),
        (22, .iq2_s, 256, 82), (23, .iq4_xs, 256, 136), (24, .i8, 1, 1), (25, .i16, 1, 2),
        (26, .i32, 1, 4), (27, .i64, 1, 8), (28, .f64, 1, 8), (29, .iq1_m, 256, 56),
        (30, .bf16, 1, 2), (34, .tq1_0, 256, 54), (35, .tq2_0, 256, 66), (39, .mxfp4, 32, 17),
    ]

    private static let byID: [UInt32: (GGMLType, Int, Int)] = {
        var d: [UInt32: (GGMLType, Int, Int)] = [:]
        for (id, t, b, s) in table { d[id] = (t, b, s) }
        return d
    }()

    private static let byType: [GGMLType: (UInt32, Int, Int)] = {
        var d: [GGMLType: (UInt32, Int, Int)] = [:]
        for (id, t, b, s) in table { d[t] = (id, b, s) }
        return d
    }()

    public init(id: UInt32) {
        self = GGMLType.byID[id]?.0 ?? .unknown(id)
    }

    /// The wire id.
    public var id: UInt32 {
        if case .unknown(let id) = self { return id }
        return GGMLType.byType[self]!.0  // every non-unknown case is in the table
    }

    /// (elements per block, bytes per block); nil for `.unknown`.
    public var blockLayout: (elements: Int, bytes: Int)? {
        if case .unknown = self { return nil }
        guard let e = GGMLType.byType[self] else { return nil }
        return (e.1, e.2)
    }

    /// True for the types `GGUFFile.dequantize` decodes.
    public var isDequantizable: Bool {
        switch self {
        case .f32, .f16, .bf16, .q8_0, .q4_0, .q4_1: return true
        default: return false
        }
    }

    /// The safetensors dtype when tensors of this type can be served zero-copy as-is.
    public var plainDType: DType? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        default: return nil
        }
    }

    /// ggml's name ("Q4_1", "BF16", ...); "type <id>" for unknown ids.
    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        case .iq2_xxs: return "IQ2_XXS"
        case .iq2_xs: return "IQ2_XS"
        case .iq3_xxs: return "IQ3_XXS"
        case .iq1_s: return "IQ1_S"
        case .iq4_nl: return "IQ4_NL"
        case .iq3_s: return "IQ3_S"
        case .iq2_s: return "IQ2_S"
        case .iq4_xs: return "IQ4_XS"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .f64: return "F64"
        case .iq1_m: return "IQ1_M"
        case .bf16: return "BF16"
        case .tq1_0: return "TQ1_0"
        case .tq2_0: return "TQ2_0"
        case .mxfp4: return "MXFP4"
        case .unknown(let id): return "type \(id)"
        }
    }
}

// MARK: - Tensor infos

/// One entry of the tensor-info table.
public struct GGUFTensorInfo: Equatable, Sendable {
    public let name: String
    /// Dimensions in GGUF order: `dims[0]` (ggml's ne[0]) varies fastest. The row-major shape
    /// (outermost first, as safetensors/PyTorch write it) is `dims.reversed()`.
    public let dims: [Int]
    public let type: GGMLType
    /// Offset of the data relative to the start of the data section (a multiple of the
    /// file's alignment).
    public let offset: Int
    /// Byte size of the data; nil when `type` is `.unknown` (its layout is not known).
    public let byteCount: Int?

    /// Row-major shape, outermost first.
    public var shape: [Int] { dims.reversed() }
    public var elementCount: Int { dims.reduce(1, *) }
}

// MARK: - Errors

/// A GGUF file that cannot be read, with the path and what is wrong. There is one `Kind` per
/// corruption class so callers and tests can tell them apart; `description` is one line.
public struct GGUFError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Kind: Equatable, Sendable {
        /// Could not open/map the file (message from the OS).
        case unreadable(String)
        /// The first four bytes are not "GGUF".
        case badMagic
        /// Version other than 2 or 3.
        case unsupportedVersion(UInt32)
        /// The file ends inside a field; `what` names the field, `offset` where it starts.
        case truncated(what: String, offset: Int)
        /// A count (tensors, metadata pairs, array elements) that cannot possibly fit in the
        /// remaining bytes: rejected before anything is allocated.
        case countTooLarge(what: String, count: UInt64)
        /// A string whose bytes are not valid UTF-8.
        case invalidUTF8(what: String, offset: Int)
        /// A metadata value type id that GGUF does not define.
        case unknownValueType(key: String, typeID: UInt32)
        /// A bool byte other than 0 or 1.
        case invalidBool(key: String)
        /// Arrays nested deeper than `GGUFFile.maxArrayDepth`.
        case nestingTooDeep(key: String)
        /// The same metadata key twice.
        case duplicateKey(String)
        /// `general.alignment` not a power-of-two integer in range.
        case badAlignment(String)
        /// The same tensor name twice.
        case duplicateTensor(String)
        /// More than 4 dimensions (ggml's maximum).
        case tooManyDimensions(tensor: String, count: UInt32)
        /// A dimension that is negative (as int64) or whose product overflows.
        case badDimensions(tensor: String, dims: [UInt64])
        /// ne[0] not a multiple of the type's block size.
        case partialBlock(tensor: String, type: GGMLType, ne0: Int)
        /// Data offset not a multiple of the alignment.
        case misalignedTensor(tensor: String, offset: UInt64, alignment: Int)
        /// Data extends past the end of the file.
        case tensorOutOfBounds(tensor: String, offset: UInt64, byteCount: Int, dataSize: Int)
        /// Two tensors whose data ranges intersect.
        case overlappingTensors(String, String)
        /// A tensor whose ggml type id this tool does not know (reported on use, not on open).
        case unknownTensorType(tensor: String, typeID: UInt32)
        /// A known ggml type that `dequantize` does not decode (K-quants, I-quants, ...).
        case unsupportedTensorType(tensor: String, type: GGMLType)
        /// No tensor of that name.
        case noSuchTensor(String)
    }

    public let path: String
    public let kind: Kind

    public init(_ path: String, _ kind: Kind) {
        self.path = path
        self.kind = kind
    }

    public var message: String {
        switch kind {
        case .unreadable(let m): return m
        case .badMagic: return "not a GGUF file (magic is not \"GGUF\")"
        case .unsupportedVersion(let v):
            if v == 1 { return "GGUF version 1 is not supported (only versions 2 and 3); re-convert the model with a current llama.cpp" }
            if v.byteSwapped == 2 || v.byteSwapped == 3 { return "big-endian GGUF (version \(v.byteSwapped)) is not supported" }
            return "unsupported GGUF version \(v) (only versions 2 and 3)"
        case .truncated(let what, let offset): return "truncated file: \(what) at byte \(offset) runs past the end"
        case .countTooLarge(let what, let count): return "corrupt header: \(what) count \(count) cannot fit in the file"
        case .invalidUTF8(let what, let offset): return "\(what) at byte \(offset) is not valid UTF-8"
        case .unknownValueType(let key, let id): return "metadata key \"\(key)\" has unknown value type \(id)"
        case .invalidBool(let key): return "metadata key \"\(key)\" has a bool that is neither 0 nor 1"
        case .nestingTooDeep(let key): return "metadata key \"\(key)\" nests arrays deeper than \(GGUFFile.maxArrayDepth)"
        case .duplicateKey(let key): return "duplicate metadata key \"\(key)\""
        case .badAlignment(let m): return "bad general.alignment: \(m)"
        case .duplicateTensor(let name): return "duplicate tensor name \"\(name)\""
        case .tooManyDimensions(let t, let n): return "tensor \"\(t)\" has \(n) dimensions (at most 4)"
        case .badDimensions(let t, let dims): return "tensor \"\(t)\" has invalid dimensions \(dims) (negative or too large)"
        case .partialBlock(let t, let type, let ne0):
            return "tensor \"\(t)\" of type \(type) has ne[0] = \(ne0), not a multiple of its block size \(type.blockLayout?.elements ?? 0)"
        case .misalignedTensor(let t, let off, let a): return "tensor \"\(t)\" data offset \(off) is not a multiple of the alignment \(a)"
        case .tensorOutOfBounds(let t, let off, let n, let size):
            return "tensor \"\(t)\" data (offset \(off), \(n) bytes) extends past the end of the data section (\(size) bytes)"
        case .overlappingTensors(let a, let b): return "tensors \"\(a)\" and \"\(b)\" overlap in the data section"
        case .unknownTensorType(let t, let id): return "tensor \"\(t)\" has unknown ggml type id \(id)"
        case .unsupportedTensorType(let t, let type):
            return "tensor \"\(t)\" has ggml type \(type), which cannot be decoded (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)"
        case .noSuchTensor(let name): return "no tensor named \"\(name)\""
        }
    }

    public var description: String { "\(path): \(message)" }
}
