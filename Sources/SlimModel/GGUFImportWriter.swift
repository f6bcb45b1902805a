import Foundation
import SlimIO

// Writing an imported GGUF as a Hugging Face model directory, one tensor at a time.
//
// Why not SafetensorsWriter: it copies every tensor into memory before writing (its `add`
// takes the bytes), which for a 7B Q4 model means 28 GB of F32. Here the header is computed
// from names and shapes alone, then each tensor is dequantized, un-permuted, converted and
// written before the next is decoded, so peak memory is about three copies of the largest
// tensor. The bytes are the same as gguf_to_hf.py's (and the safetensors package's for a
// single-dtype file): tensors sorted by name, compact header `{"__metadata__":{"format":"pt"},
// name:{"dtype":…,"shape":[…],"data_offsets":[b,e]},…}` space-padded to a multiple of 8.

extension GGUFImport {
    /// Writes `model.safetensors` (in `dtype`: F32, F16 or BF16), `tokenizer.json`,
    /// `tokenizer_config.json` and `config.json` into `directory` (created if missing). Each
    /// file is replaced atomically; config.json, which marks a complete model, is written last.
    /// F16 rounds to nearest even (overflow to infinity); BF16 rounds to nearest even exactly
    /// as gguf_to_hf.py does for every non-NaN value (NaN handling: see `BF16.encode`).
    public func write(directory: String, dtype: DType) throws {
        let torchDtype: String
        switch dtype {
        case .f32: torchDtype = "float32"
        case .f16: torchDtype = "float16"
        case .bf16: torchDtype = "bfloat16"
        default: throw FileError(directory, "cannot write weights as \(dtype.rawValue) (F32, F16 or BF16 only)")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw FileError(directory, "cannot create directory: \(error.localizedDescription)")
        }
        func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }

        try writeSafetensors(to: file("model.safetensors"), dtype: dtype)
        try AtomicFile.write(text: tokenizerJSON.serialized(pretty: true), to: file("tokenizer.json"))
        try AtomicFile.write(text: tokenizerConfig.serialized(pretty: true), to: file("tokenizer_config.json"))
        var cfg = config.object ?? JSONObject()
        cfg["torch_dtype"] = .string(torchDtype)
        try AtomicFile.write(text: JSON.object(cfg).serialized(pretty: true), to: file("config.json"))
    }

    /// Streams every tensor, sorted by name, into a safetensors file at `path`.
    func writeSafetensors(to path: String, dtype: DType) throws {
        let ordered = entries.sorted { $0.hfName.utf8.lexicographicallyPrecedes($1.hfName.utf8) }
        let header = Self.safetensorsHeader(ordered.map { ($0.hfName, $0.shape) }, dtype: dtype)
        let largest = ordered.map(\.elementCount).max() ?? 0
        let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(largest, 1))
        defer { floats.deallocate() }
        let halves = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: dtype == .f32 ? 1 : max(largest, 1))
        defer { halves.deallocate() }

        try AtomicFile.write(to: path) { handle in
            var length = UInt64(header.count).littleEndian
            try handle.write(contentsOf: Data(bytes: &length, count: 8))
            try handle.write(contentsOf: header)
            for e in ordered {
                let values = UnsafeMutableBufferPointer(rebasing: floats[0..<e.elementCount])
                try decode(e, into: values)
                let bytes: UnsafeRawBufferPointer
                switch dtype {
                case .f16:
                    for i in 0..<values.count { halves[i] = F16.encode(values[i]).littleEndian }
                    bytes = UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: halves[0..<values.count]))
                case .bf16:
                    for i in 0..<values.count { halves[i] = BF16.encode(values[i]).littleEndian }
                    bytes = UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: halves[0..<values.count]))
                default:
                    bytes = UnsafeRawBufferPointer(values)
                }
                guard let base = bytes.baseAddress, bytes.count > 0 else { continue }
                try handle.write(contentsOf: Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base),
                                                  count: bytes.count, deallocator: .none))
            }
        }
    }

    /// The safetensors header for `tensors` (already in storage order), padded with spaces to
    /// a multiple of 8. Names come from the fixed HF naming scheme (ASCII letters, digits,
    /// dots and underscores), so they need no JSON escaping.
    static func safetensorsHeader(_ tensors: [(name: String, shape: [Int])], dtype: DType) -> Data {
        var s = #"{"__metadata__":{"format":"pt"}"#
        var offset = 0
        for (name, shape) in tensors {
            let bytes = shape.reduce(1, *) * dtype.byteSize
            s += ",\"\(name)\":{\"dtype\":\"\(dtype.rawValue)\",\"shape\":["
                + shape.map(String.init).joined(separator: ",")
                + "],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        s += "}"
        var data = Data(s.utf8)
        while data.count % 8 != 0 { data.append(0x20) }
        return data
    }
}
