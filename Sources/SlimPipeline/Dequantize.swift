import Foundation
import SlimIO
import SlimKernels
import SlimModel
import SlimPacking

/// Expands a slim-packed checkpoint into a plain Hugging Face directory (for tools that do not
/// read the packed format): every packed linear becomes `.weight` decoded by the format's
/// scalar reference (`PackedLinear.dequantize`), every other tensor is copied as stored,
/// config.json loses its `quantization_config` (kept as `slim_quant_dequantized_from`), and the
/// tokenizer files and allocation.json are copied. Written in a staging directory and renamed
/// into place (`StagedDirectory`).
public enum PackedDequantizer {
    /// - Parameters:
    ///   - dtype: element type of the decoded weights (F32 is exact; F16/BF16 round once).
    /// - Throws: `FileError` when `model` is not packed, the output exists and is not empty,
    ///   or any read/write fails (the output path is then left as it was).
    public static func write(model: LoadedModel, to output: String, dtype: DType) throws {
        guard let packing = model.config.packing else {
            throw FileError(model.path, "not a slim-packed checkpoint (no quantization_config with format slim-packed)")
        }
        guard [.f32, .f16, .bf16].contains(dtype) else { throw FileError(output, "cannot write weights as \(dtype.rawValue)") }
        let fm = FileManager.default
        let absolute = RunManifest.absolute(output)
        if fm.fileExists(atPath: absolute), !((try? fm.contentsOfDirectory(atPath: absolute)) ?? []).isEmpty {
            throw FileError(output, "exists and is not empty: refusing to replace it")
        }
        try StagedDirectory.write(to: output) { staging in
            try writeContents(model: model, packing: packing, dtype: dtype, into: staging)
        }
    }

    /// Everything but config.json into the staging directory; returns config.json's object.
    private static func writeContents(model: LoadedModel, packing: PackedCheckpointConfig, dtype: DType,
                                      into staging: StagedDirectory) throws -> JSONObject {
        let fm = FileManager.default
        func file(_ n: String) -> String { staging.file(n) }

        let source = model.weights
        var packedPrefixes: [String: LinearModule] = [:]
        for m in model.layout.linearModules { packedPrefixes[PackedFormat.prefix(ofWeight: m.weightName)] = m }
        var tensors: [StreamedTensor] = []
        for name in source.tensorNames {
            if let dot = name.lastIndex(of: "."), let m = packedPrefixes[String(name[..<dot])] {
                // One `.weight` per packed linear, emitted where its `.bits` tensor was.
                guard name.hasSuffix(PackedFormat.Suffix.bits) else { continue }
                tensors.append(StreamedTensor(name: m.weightName, dtype: dtype, shape: [m.outFeatures, m.inFeatures]) { emit in
                    let packed = try PackedLinear(source: source, prefix: PackedFormat.prefix(ofWeight: m.weightName),
                                                  rows: m.outFeatures, columns: m.inFeatures, groupSize: packing.groupSize,
                                                  path: model.path)
                    let values = packed.dequantize()
                    try emitConverted(values, dtype: dtype, emit)
                })
                continue
            }
            guard let info = source.tensorInfo(name) else { throw FileError(model.path, "tensor \(name) disappeared") }
            tensors.append(StreamedTensor(name: name, dtype: info.dtype, shape: info.shape) { emit in
                guard let view = source.tensor(name) else { throw FileError(model.path, "tensor \(name) disappeared") }
                try view.withBytes { try emit($0) }
            })
        }
        try SafetensorsStream.write(to: file("model.safetensors"), tensors: tensors, metadata: [("format", "pt")])
        try CheckpointOutput.writeTokenizer(model: model, into: staging.path)
        let allocation = (model.location as NSString).appendingPathComponent("allocation.json")
        if fm.fileExists(atPath: allocation) {
            let bytes = try MappedFile(path: allocation)
            try withExtendedLifetime(bytes) {
                try AtomicFile.write(to: file("allocation.json")) { handle in
                    var out = DescriptorWriter(fd: handle.fileDescriptor, path: file("allocation.json"))
                    try out.append(bytes.bytes)
                    try out.flush()
                }
            }
        }
        var config = try CheckpointOutput.sourceConfig(model)
        if let q = config["quantization_config"] {
            config["quantization_config"] = nil
            config["slim_quant_dequantized_from"] = q
        }
        config["torch_dtype"] = .string(dtype == .f32 ? "float32" : (dtype == .f16 ? "float16" : "bfloat16"))
        return config
    }

    private static func emitConverted(_ values: [Float], dtype: DType,
                                      _ emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        switch dtype {
        case .f32:
            try values.withUnsafeBytes { try emit($0) }
        default:
            var halves = [UInt16](repeating: 0, count: values.count)
            values.withUnsafeBufferPointer { v in
                halves.withUnsafeMutableBufferPointer { h in
                    if dtype == .f16 {
                        Kernels.convertF32ToF16(v.baseAddress!, h.baseAddress!, count: values.count)
                    } else {
                        Kernels.convertF32ToBF16(v.baseAddress!, h.baseAddress!, count: values.count)
                    }
                }
            }
            try halves.withUnsafeBytes { try emit($0) }
        }
    }
}
