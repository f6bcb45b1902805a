// Errors for reading and writing safetensors files and sharded checkpoints.
//
// Reading: every way a file or checkpoint can be malformed has its own `SafetensorsError` case,
// so callers and tests can tell the classes apart; `SafetensorsFileError` adds the file path and
// renders the one-line message the CLI prints. Writing: `SafetensorsWriterError` reports bad
// input handed to `SafetensorsWriter` (a programming or pipeline error, not a corrupt file).

// MARK: - Reader errors

/// What is wrong with a safetensors file or checkpoint: one case per corruption class.
public enum SafetensorsError: Error, Equatable, Sendable {
    // MARK: File framing

    /// The file is shorter than the 8-byte little-endian header length that starts every file.
    case fileTooSmall(size: Int)
    /// The header length exceeds the format's limit of `SafetensorsLimits.maxHeaderBytes`.
    case headerTooLarge(length: UInt64)
    /// The header length points past the end of the file (8 + length > file size).
    case headerOutOfBounds(length: UInt64, fileSize: Int)
    /// The header bytes are not valid UTF-8; `offset` is the first bad byte, counted from the
    /// start of the header (file offset 8).
    case headerNotUTF8(offset: Int)
    /// The header does not start with `{`. `firstByte` is nil for an empty header.
    case headerNotObject(firstByte: UInt8?)
    /// The JSON object is followed by padding other than spaces (0x20), such as a newline.
    case invalidHeaderPadding(byte: UInt8)
    /// The header is not a valid JSON document (this includes duplicate keys, hence duplicate
    /// tensor names). The payload is the parser's message.
    case invalidJSON(String)

    // MARK: Header entries

    /// `__metadata__` is not an object whose values are all strings.
    case invalidMetadata(String)
    /// A tensor entry is not an object, lacks `dtype`/`shape`/`data_offsets`, has another key,
    /// or has a `dtype` that is not a string.
    case invalidTensorEntry(tensor: String, reason: String)
    /// The dtype string is not one of the element types this tool supports (`DType`).
    case unknownDType(tensor: String, dtype: String)
    /// `shape` is not an array of non-negative integers.
    case invalidShape(tensor: String, reason: String)
    /// `data_offsets` is not `[begin, end]` with non-negative integers and begin <= end.
    case invalidOffsets(tensor: String, reason: String)
    /// The element count times the element size does not fit in a 64-bit integer.
    case sizeOverflow(tensor: String)
    /// `end - begin` differs from the byte size implied by dtype and shape.
    case sizeMismatch(tensor: String, expected: Int, actual: Int)

    // MARK: Data layout

    /// Sorted by offset, tensors must tile the data section from 0 with no gap and no overlap:
    /// this tensor begins at `begin` where `expectedBegin` was required.
    case overlappingOrGap(tensor: String, expectedBegin: Int, begin: Int)
    /// The tensor's data runs past the end of the file (a truncated file).
    case missingBytes(tensor: String, end: Int, dataSize: Int)
    /// The data section holds bytes that no tensor covers after the last tensor's end.
    case trailingBytes(dataEnd: Int, dataSize: Int)

    // MARK: Checkpoints

    /// The directory holds neither `model.safetensors` nor `model.safetensors.index.json`, or
    /// an empty file list was given.
    case noCheckpoint
    /// The directory holds both `model.safetensors` and `model.safetensors.index.json`, so it
    /// is unclear which one is current (for example after an interrupted write).
    case ambiguousCheckpoint
    /// The index file is not `{"metadata": {...}, "weight_map": {tensor: shard file}}`.
    case invalidIndex(String)
    /// A shard name in the index is not a plain file name (empty, `.`/`..`, or contains a
    /// path separator or NUL): it could point outside the checkpoint directory.
    case invalidShardName(String)
    /// A shard named by the index does not exist in the checkpoint directory.
    case missingShard(String)
    /// The index maps `tensor` to `shard`, but that shard does not contain it.
    case tensorNotInShard(tensor: String, shard: String)
    /// `shard` contains `tensor`, but the index does not map it there.
    case unlistedTensor(tensor: String, shard: String)
    /// The same tensor name is stored in two shard files.
    case duplicateTensor(tensor: String, firstShard: String, secondShard: String)
}

/// The format's hard limits, matching the Rust reference implementation.
public enum SafetensorsLimits {
    /// Largest accepted header, in bytes (the reference's `MAX_HEADER_SIZE`).
    public static let maxHeaderBytes = 100_000_000
}

extension SafetensorsError: CustomStringConvertible {
    /// A human-readable sentence naming the tensor and the numbers involved.
    public var description: String {
        switch self {
        case .fileTooSmall(let size):
            return "file is \(size) bytes, too small for a safetensors file (the 8-byte header length is missing)"
        case .headerTooLarge(let length):
            return "header length \(length) exceeds the \(SafetensorsLimits.maxHeaderBytes)-byte limit"
        case .headerOutOfBounds(let length, let fileSize):
            return "header length \(length) runs past the end of the \(fileSize)-byte file"
        case .headerNotUTF8(let offset):
            return "header is not valid UTF-8 (bad byte at header offset \(offset))"
        case .headerNotObject(let first):
            if let first { return "header does not start with '{' (first byte \(hex(first)))" }
            return "header is empty (a JSON object starting with '{' is required)"
        case .invalidHeaderPadding(let byte):
            return "header JSON is followed by padding byte \(hex(byte)); only spaces (0x20) are allowed"
        case .invalidJSON(let message):
            return "header is not valid JSON: \(message)"
        case .invalidMetadata(let reason):
            return "invalid __metadata__: \(reason)"
        case .invalidTensorEntry(let tensor, let reason):
            return "tensor \"\(tensor)\": invalid entry: \(reason)"
        case .unknownDType(let tensor, let dtype):
            let known = DType.allCases.map(\.rawValue).joined(separator: ", ")
            return "tensor \"\(tensor)\": unsupported dtype \"\(dtype)\" (supported: \(known))"
        case .invalidShape(let tensor, let reason):
            return "tensor \"\(tensor)\": invalid shape: \(reason)"
        case .invalidOffsets(let tensor, let reason):
            return "tensor \"\(tensor)\": invalid data_offsets: \(reason)"
        case .sizeOverflow(let tensor):
            return "tensor \"\(tensor)\": byte size of the shape overflows 64 bits"
        case .sizeMismatch(let tensor, let expected, let actual):
            return "tensor \"\(tensor)\": dtype and shape need \(expected) bytes but data_offsets span \(actual)"
        case .overlappingOrGap(let tensor, let expectedBegin, let begin):
            let what = begin > expectedBegin ? "leaves a gap" : "overlaps the previous tensor"
            return "tensor \"\(tensor)\" begins at data offset \(begin) but the previous tensor ends at \(expectedBegin): it \(what)"
        case .missingBytes(let tensor, let end, let dataSize):
            return "tensor \"\(tensor)\" ends at data offset \(end) but the data section has only \(dataSize) bytes (truncated file?)"
        case .trailingBytes(let dataEnd, let dataSize):
            return "\(dataSize - dataEnd) bytes after the last tensor (data ends at \(dataEnd) of \(dataSize)) are not covered by any tensor"
        case .noCheckpoint:
            return "no model.safetensors or model.safetensors.index.json found"
        case .ambiguousCheckpoint:
            return "both model.safetensors and model.safetensors.index.json exist; remove the stale one"
        case .invalidIndex(let reason):
            return "invalid checkpoint index: \(reason)"
        case .invalidShardName(let name):
            return "shard name \"\(name)\" is not a plain file name"
        case .missingShard(let name):
            return "shard \"\(name)\" listed in the index does not exist"
        case .tensorNotInShard(let tensor, let shard):
            return "the index maps tensor \"\(tensor)\" to shard \"\(shard)\", which does not contain it"
        case .unlistedTensor(let tensor, let shard):
            return "tensor \"\(tensor)\" in shard \"\(shard)\" is not mapped to that shard by the index"
        case .duplicateTensor(let tensor, let first, let second):
            return "tensor \"\(tensor)\" is stored in both \"\(first)\" and \"\(second)\""
        }
    }

    private func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return "0x" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 0xF)])
    }
}

/// A `SafetensorsError` together with the file it concerns. `description` is one line:
/// "PATH: what is wrong".
public struct SafetensorsFileError: Error, Equatable, Sendable, CustomStringConvertible {
    public let path: String
    public let kind: SafetensorsError

    public init(path: String, kind: SafetensorsError) {
        self.path = path
        self.kind = kind
    }

    public var description: String { "\(path): \(kind.description)" }
}

// MARK: - Writer errors

/// Invalid input given to `SafetensorsWriter`.
public enum SafetensorsWriterError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `__metadata__` is reserved by the format and cannot name a tensor.
    case reservedName(String)
    /// A tensor with this name was already added.
    case duplicateName(String)
    /// A dimension is negative, or the element count or byte size overflows.
    case invalidShape(name: String, shape: [Int])
    /// The byte or element count handed in does not match the shape.
    case sizeMismatch(name: String, expected: Int, actual: Int)
    /// Floats can only be stored as F32, F16, BF16 or F64.
    case unsupportedConversion(name: String, dtype: DType)
    /// The same metadata key appears twice.
    case duplicateMetadataKey(String)
    /// The serialized header would exceed `SafetensorsLimits.maxHeaderBytes`.
    case headerTooLarge(Int)
    /// `maxShardBytes` must be positive.
    case invalidShardSize(Int)

    public var description: String {
        switch self {
        case .reservedName(let n): return "tensor name \"\(n)\" is reserved by the safetensors format"
        case .duplicateName(let n): return "tensor \"\(n)\" was added twice"
        case .invalidShape(let n, let s): return "tensor \"\(n)\": invalid shape \(s)"
        case .sizeMismatch(let n, let e, let a): return "tensor \"\(n)\": shape needs \(e) but \(a) were given"
        case .unsupportedConversion(let n, let d): return "tensor \"\(n)\": cannot store floats as \(d.rawValue)"
        case .duplicateMetadataKey(let k): return "metadata key \"\(k)\" appears twice"
        case .headerTooLarge(let n): return "safetensors header of \(n) bytes exceeds the \(SafetensorsLimits.maxHeaderBytes)-byte limit"
        case .invalidShardSize(let n): return "maximum shard size must be positive, got \(n)"
        }
    }
}
