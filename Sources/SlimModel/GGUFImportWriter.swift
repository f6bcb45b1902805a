import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SlimIO

// Writing an imported GGUF as a Hugging Face model directory, one tensor at a time.
//
// Each tensor is a `StreamedTensor` whose producer dequantizes, un-permutes and converts it
// into scratch buffers shared by all tensors, so `SafetensorsStream` writes it before the next
// one is decoded: peak memory is about three copies of the largest tensor, not the whole model
// (a 7B Q4 model would be 28 GB of F32). With one dtype the stream's storage order is by name,
// which is what gguf_to_hf.py (and the safetensors package) write.

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
        // Everything is written to a staging directory beside the output first, so a failure
        // (bad tensor, full disk) leaves `directory` as it was. The files then move in with
        // rename(2); config.json, which marks a complete model, is removed first and moved in
        // last, so a kill between two renames leaves a directory that no loader takes for a
        // model rather than a mix of old and new files.
        let fm = FileManager.default
        let standardized = (directory as NSString).standardizingPath
        let parent = (standardized as NSString).deletingLastPathComponent
        let name = (standardized as NSString).lastPathComponent
        let parentDir = parent.isEmpty ? "." : parent
        let staging = (parentDir as NSString).appendingPathComponent(".\(name).partial-\(getpid())")
        do {
            try fm.createDirectory(atPath: parentDir, withIntermediateDirectories: true)
            try? fm.removeItem(atPath: staging)
            try fm.createDirectory(atPath: staging, withIntermediateDirectories: false)
        } catch {
            throw FileError(directory, "cannot create the staging directory \(staging): \(error.localizedDescription)")
        }
        var committed = false
        defer { if !committed { try? fm.removeItem(atPath: staging) } }
        func staged(_ name: String) -> String { (staging as NSString).appendingPathComponent(name) }

        try writeSafetensors(to: staged("model.safetensors"), dtype: dtype)
        try AtomicFile.write(text: tokenizerJSON.serialized(pretty: true), to: staged("tokenizer.json"))
        try AtomicFile.write(text: tokenizerConfig.serialized(pretty: true), to: staged("tokenizer_config.json"))
        var cfg = config.object ?? JSONObject()
        cfg["torch_dtype"] = .string(torchDtype)
        try AtomicFile.write(text: JSON.object(cfg).serialized(pretty: true), to: staged("config.json"))

        do {
            try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw FileError(directory, "cannot create directory: \(error.localizedDescription)")
        }
        func file(_ name: String) -> String { (directory as NSString).appendingPathComponent(name) }
        if unlink(file("config.json")) != 0 && errno != ENOENT {
            throw FileError(file("config.json"), "cannot replace: \(String(cString: strerror(errno)))")
        }
        for n in ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"] {
            guard rename(staged(n), file(n)) == 0 else {
                throw FileError(file(n), "cannot move the new file into place: \(String(cString: strerror(errno)))")
            }
        }
        committed = true
        try? fm.removeItem(atPath: staging)
    }

    /// Streams every tensor into a safetensors file at `path` with `{"format":"pt"}` metadata.
    /// `dtype` must be F32, F16 or BF16 (checked by `write(directory:dtype:)`).
    func writeSafetensors(to path: String, dtype: DType) throws {
        let largest = entries.map(\.elementCount).max() ?? 0
        let floats = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(largest, 1))
        defer { floats.deallocate() }
        let halves = UnsafeMutableBufferPointer<UInt16>.allocate(capacity: dtype == .f32 ? 1 : max(largest, 1))
        defer { halves.deallocate() }

        // Producers run one at a time during the write, so they can share the scratch buffers.
        let tensors = entries.map { e in
            StreamedTensor(name: e.hfName, dtype: dtype, shape: e.shape) { emit in
                let values = UnsafeMutableBufferPointer(rebasing: floats[0..<e.elementCount])
                try self.decode(e, into: values)
                switch dtype {
                case .f16:
                    for i in 0..<values.count { halves[i] = F16.encode(values[i]).littleEndian }
                    try emit(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: halves[0..<values.count])))
                case .bf16:
                    for i in 0..<values.count { halves[i] = BF16.encode(values[i]).littleEndian }
                    try emit(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: halves[0..<values.count])))
                default:
                    try emit(UnsafeRawBufferPointer(values))
                }
            }
        }
        try SafetensorsStream.write(to: path, tensors: tensors, metadata: [("format", "pt")])
    }
}
