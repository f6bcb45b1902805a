import Foundation
import SlimIO
import SlimModel
import SlimPacking

// The output checkpoint: a Hugging Face directory every slim-quant command (and transformers)
// loads, with the fake-quantized linear weights as F16 and every other tensor as stored in the
// source. It is assembled in a sibling staging directory and renamed into place
// (`StagedDirectory`), so the output path never holds a half-written model.

enum CheckpointOutput {
    /// Files copied verbatim from a model directory when present.
    static let tokenizerFiles = ["tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
                                 "added_tokens.json", "generation_config.json"]

    /// The `quantization_config.quant_method` of our outputs. transformers does not know it and
    /// loads the checkpoint as a plain model, which is right for fake-quantized weights.
    static let quantMethod = "slim-quant"

    // MARK: Output path checks

    /// Fails early (before any quantization work) when `output` cannot receive a checkpoint:
    /// an existing file, a non-empty directory that is not a previous slim-quant output, or the
    /// model's own directory.
    static func checkDestination(_ output: String, model: LoadedModel) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: output, isDirectory: &isDir) else {
            let parent = (RunManifest.absolute(output) as NSString).deletingLastPathComponent
            guard fm.fileExists(atPath: parent, isDirectory: &isDir), isDir.boolValue else {
                throw FileError(output, "the parent directory \(parent) does not exist")
            }
            return
        }
        guard isDir.boolValue else { throw FileError(output, "exists and is not a directory") }
        if RunManifest.absolute(output) == RunManifest.absolute(model.location) {
            throw FileError(output, "is the input model's directory: choose another --out")
        }
        let entries = (try? fm.contentsOfDirectory(atPath: output)) ?? []
        guard !entries.isEmpty else { return }
        guard isPreviousOutput(output) else {
            throw FileError(output, "exists, is not empty and is not a slim-quant output: refusing to replace it")
        }
    }

    /// True when `directory/config.json` carries our quantization_config.
    static func isPreviousOutput(_ directory: String) -> Bool {
        let config = (directory as NSString).appendingPathComponent("config.json")
        guard let json = try? WorkDirectory.readJSON(config) else { return false }
        return json["quantization_config"]?["quant_method"]?.string == quantMethod
    }

    // MARK: Writing

    /// Writes the checkpoint to `output`.
    /// - Parameters:
    ///   - layerFiles: per decoder layer, the work directory's safetensors file of its F16
    ///     fake-quantized linear weights (named as in the model).
    ///   - quantizationConfig: the `quantization_config` block for config.json.
    static func write(model: LoadedModel, to output: String, layerFiles: [String], allocation: AllocationFile,
                      format: OutputFormat, unquantizedDType: DType? = nil, quantizationConfig: JSONObject) throws {
        try StagedDirectory.write(to: output) { staging in
            try writeWeights(model: model, layerFiles: layerFiles, format: format, allocation: allocation,
                             unquantizedDType: unquantizedDType, to: staging.file("model.safetensors"))
            try writeTokenizer(model: model, into: staging.path)
            try allocation.write(to: staging.file("allocation.json"))
            var config = try sourceConfig(model)
            config["quantization_config"] = .object(quantizationConfig)
            return config
        }
    }

    /// model.safetensors: every source tensor in source order of names, each linear weight
    /// replaced by its quantized tensors from `layerFiles` (the packed set, or one F16
    /// fake-quantized weight); the other floating-point tensors as `unquantizedDType` when given.
    static func writeWeights(model: LoadedModel, layerFiles: [String], format: OutputFormat, allocation: AllocationFile,
                             unquantizedDType: DType? = nil, to path: String) throws {
        let source = model.weights
        var quantized: [String: [TensorView]] = [:]
        for (l, layerPath) in layerFiles.enumerated() {
            let file = try SafetensorsFile(path: layerPath)
            for m in model.layout.linearModules(layer: l) {
                switch format {
                case .packed:
                    // Validated as the loader will (geometry from the stored bit map).
                    let prefix = PackedFormat.prefix(ofWeight: m.weightName)
                    let packed = try PackedLinear(source: file, prefix: prefix, rows: m.outFeatures, columns: m.inFeatures,
                                                  groupSize: allocation.groupSize, path: layerPath)
                    quantized[m.weightName] = try packed.geometry.tensorShapes.map { (suffix, _, _) throws -> TensorView in
                        guard let v = file.tensor(prefix + suffix) else { throw FileError(layerPath, "missing \(prefix + suffix)") }
                        return v
                    }
                case .fakeQuant:
                    guard let view = file.tensor(m.weightName), view.dtype == .f16, view.shape == [m.outFeatures, m.inFeatures] else {
                        throw FileError(layerPath, "missing or misshapen quantized tensor \(m.weightName)")
                    }
                    quantized[m.weightName] = [view]
                }
            }
        }
        var tensors: [StreamedTensor] = []
        for name in source.tensorNames {
            if let views = quantized[name] {
                for view in views {
                    tensors.append(StreamedTensor(name: view.name, dtype: view.dtype, shape: view.shape) { emit in
                        try view.withBytes { try emit($0) }
                    })
                }
                continue
            }
            guard let info = source.tensorInfo(name) else { throw FileError(model.path, "tensor \(name) disappeared") }
            if let target = unquantizedDType, info.dtype.isFloatingPoint, info.dtype != target {
                tensors.append(StreamedTensor(name: name, dtype: target, shape: info.shape) { emit in
                    guard let view = source.tensor(name) else { throw FileError(model.path, "tensor \(name) disappeared") }
                    let bytes: [UInt8]
                    do { bytes = try encodedBytes(view, as: target) } catch {
                        throw FileError(model.path, "\(error)" + (target == .f16 ? "; use --unquantized-dtype bf16 or source" : ""))
                    }
                    try bytes.withUnsafeBytes { try emit($0) }
                })
                continue
            }
            tensors.append(StreamedTensor(name: name, dtype: info.dtype, shape: info.shape) { emit in
                // Fetched only now: an imported GGUF decodes each tensor on access.
                guard let view = source.tensor(name) else { throw FileError(model.path, "tensor \(name) disappeared") }
                try view.withBytes { try emit($0) }
            })
        }
        var metadata: [(key: String, value: String)] = [("format", "pt")]
        if format == .packed {
            metadata += [(PackedFormat.MetadataKey.format, PackedFormat.name),
                         (PackedFormat.MetadataKey.version, String(PackedFormat.version)),
                         (PackedFormat.MetadataKey.groupSize, String(allocation.groupSize)),
                         (PackedFormat.MetadataKey.bits, String(allocation.bits)),
                         (PackedFormat.MetadataKey.method, allocation.method)]
        }
        try SafetensorsStream.write(to: path, tensors: tensors, metadata: metadata)
    }

    /// The model's config.json object as stored (key order kept); for GGUF, the imported one.
    static func sourceConfig(_ model: LoadedModel) throws -> JSONObject {
        if let gguf = model.weights as? GGUFImport {
            guard let object = gguf.config.object else { throw FileError(model.path, "imported config is not an object") }
            return object
        }
        guard let object = try WorkDirectory.readJSON(model.configPath)?.object else {
            throw FileError(model.configPath, "config.json is not a JSON object")
        }
        return object
    }

    /// Copies the tokenizer files of a model directory, or writes those of a GGUF import.
    static func writeTokenizer(model: LoadedModel, into directory: String) throws {
        func target(_ n: String) -> String { (directory as NSString).appendingPathComponent(n) }
        if let gguf = model.weights as? GGUFImport {
            try AtomicFile.write(text: gguf.tokenizerJSON.serialized(pretty: true), to: target("tokenizer.json"))
            try AtomicFile.write(text: gguf.tokenizerConfig.serialized(pretty: true), to: target("tokenizer_config.json"))
            return
        }
        for name in tokenizerFiles {
            let sourcePath = (model.location as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: sourcePath) else { continue }
            let mapped = try MappedFile(path: sourcePath)
            try withExtendedLifetime(mapped) {
                try AtomicFile.write(to: target(name)) { handle in
                    var out = DescriptorWriter(fd: handle.fileDescriptor, path: target(name))
                    try out.append(mapped.bytes)
                    try out.flush()
                }
            }
        }
    }
}
