import Foundation
import SlimData
import SlimIO
import SlimKernels
import SlimModel
import SlimQuant

// What one `quantize` run does, and the manifest that pins it so an interrupted run only
// resumes with exactly the same parameters.

/// How `quantize` stores the quantized linears.
public enum OutputFormat: String, Sendable, CaseIterable {
    /// The slim-packed mixed-precision format (SlimPacking; docs/FORMAT.md): codes at each
    /// group's bit width, fp16 scales, packed zero points. The default.
    case packed
    /// Fake-quantized weights as F16 (the dequantized values), loadable by any tool; needed
    /// for `ReferenceCompat.ternarySign`, whose zero signs a 1-bit code cannot hold.
    case fakeQuant = "fake-quant"

    /// `quantization_config.format`.
    public var formatName: String { self == .packed ? "slim-packed" : "fake-quant-fp16" }
}

/// The parameters of a quantization run (the CLI's options, typed).
public struct PipelineConfiguration: Sendable {
    /// Model directory or GGUF file (anything `LoadedModel` opens).
    public var modelPath: String
    /// Output checkpoint directory (created or replaced at the end).
    public var outputPath: String
    /// Resume state; nil means `<outputPath>.work`.
    public var workDirectory: String?
    public var method: QuantMethod
    /// Target bits N.
    public var bits: Int
    public var groupSize: Int
    /// GPTQ relative damping (percdamp).
    public var percdamp: Double
    /// N calibration windows.
    public var samples: Int
    /// L tokens per window.
    public var sequenceLength: Int
    public var seed: Int
    public var calibration: CalibrationSource
    /// A bit allocation file to reuse (validated against the model; skips SBA).
    public var allocationPath: String?
    public var compat: ReferenceCompat
    public var activationStorage: ActivationStorage
    /// Packed (default) or fake-quantized F16 weights.
    public var outputFormat: OutputFormat = .packed
    /// Element type of the floating-point tensors that are not quantized (embedding, classifier,
    /// norms) in the output; nil keeps each as stored in the source.
    public var unquantizedDType: DType? = nil
    /// Worker threads (results never depend on it).
    public var threads: Int
    /// Continue a matching interrupted run found in the work directory (false: start over).
    public var resume: Bool
    /// Written into the outputs (config.json, allocation.json) and the manifest.
    public var toolVersion: String
    /// Stop as if interrupted right after layer k is committed (`PipelineInterrupted`), e.g. to
    /// test resuming or to split a long run; nil runs to the end.
    public var stopAfterLayer: Int?

    public init(modelPath: String, outputPath: String, method: QuantMethod, bits: Int, groupSize: Int = 128,
                percdamp: Double = 0.01, samples: Int = 128, sequenceLength: Int = 2048, seed: Int = 0,
                calibration: CalibrationSource = .dataset(.wikitext2, dataDir: nil), allocationPath: String? = nil,
                compat: ReferenceCompat = [], activationStorage: ActivationStorage = .f32,
                threads: Int = Kernels.defaultThreads, workDirectory: String? = nil, resume: Bool = true,
                toolVersion: String) {
        self.modelPath = modelPath
        self.outputPath = outputPath
        self.workDirectory = workDirectory
        self.method = method
        self.bits = bits
        self.groupSize = groupSize
        self.percdamp = percdamp
        self.samples = samples
        self.sequenceLength = sequenceLength
        self.seed = seed
        self.calibration = calibration
        self.allocationPath = allocationPath
        self.compat = compat
        self.activationStorage = activationStorage
        self.threads = threads
        self.resume = resume
        self.toolVersion = toolVersion
    }

    /// `workDirectory`, or `<outputPath>.work` (trailing slashes of the output ignored).
    public var workDirectoryPath: String {
        if let workDirectory { return workDirectory }
        var out = outputPath
        while out.count > 1 && out.hasSuffix("/") { out.removeLast() }
        return out + ".work"
    }

    /// RTN needs no activations: no calibration data, no forward passes.
    public var needsCalibration: Bool { method != .rtn }

    /// The per-module options this run quantizes with.
    public var quantizationOptions: QuantizationOptions {
        QuantizationOptions(method: method, bits: bits, groupSize: groupSize, percdamp: percdamp, compat: compat,
                            threads: threads)
    }

    /// Checks ranges that need no I/O.
    /// - Throws: `QuantError.invalidOption` naming the offending value.
    public func validate() throws {
        try quantizationOptions.validate()
        guard samples >= 1 else { throw QuantError.invalidOption("samples must be ≥ 1, got \(samples)") }
        guard sequenceLength >= 2 else { throw QuantError.invalidOption("sequence length must be ≥ 2, got \(sequenceLength)") }
        guard threads >= 1 else { throw QuantError.invalidOption("threads must be ≥ 1, got \(threads)") }
        guard !outputPath.isEmpty else { throw QuantError.invalidOption("the output path is empty") }
        if outputFormat == .packed, compat.contains(.ternarySign) {
            throw QuantError.invalidOption("reference-compat ternarySign gives 1-bit weights a third level (sign 0) that "
                + "the packed format cannot store: add --format fake-quant")
        }
    }
}

// MARK: - Reference-compat names

extension ReferenceCompat {
    /// Flag names as the CLI spells them, in a fixed order.
    public static let names: [(name: String, flag: ReferenceCompat)] = [
        ("doubleDamp", .doubleDamp), ("symLeak", .symLeak), ("searchRange", .searchRange),
        ("klBiasOnlyInReference", .klBiasOnlyInReference), ("fp32Parameters", .fp32Parameters),
        ("ternarySign", .ternarySign), ("rankShortGroup", .rankShortGroup),
    ]

    /// Parses "doubleDamp,symLeak", "all" or "" (none).
    /// - Returns: nil with the unknown name when a word is not a flag.
    public static func parse(_ text: String) -> (flags: ReferenceCompat, unknown: String?) {
        var flags: ReferenceCompat = []
        for word in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !word.isEmpty {
            if word == "all" { flags.formUnion(.all); continue }
            if word == "none" { continue }
            guard let entry = names.first(where: { $0.name.lowercased() == word.lowercased() }) else {
                return (flags, word)
            }
            flags.insert(entry.flag)
        }
        return (flags, nil)
    }

    /// The names of the flags set, in `names` order.
    public var flagNames: [String] { Self.names.filter { contains($0.flag) }.map(\.name) }
}

// MARK: - Manifest

/// The parameters that determine a run's output bit for bit, stored in the work directory.
/// A resume is refused when any of them differs.
struct RunManifest: Equatable {
    static let formatName = "slim-quant-work"
    static let formatVersion = 1

    /// Ordered (name, value) pairs compared one by one.
    var parameters: JSONObject

    init(parameters: JSONObject) { self.parameters = parameters }

    init(configuration c: PipelineConfiguration, model: LoadedModel, modelFingerprint: String,
         calibration: CalibrationSet?, allocationSHA256: String?) {
        var p = JSONObject()
        p["tool_version"] = .string(c.toolVersion)
        p["model"] = .string(Self.absolute(model.path))
        p["model_fingerprint"] = .string(modelFingerprint)
        p["method"] = .string(c.method.rawValue)
        p["bits"] = .int(Int64(c.bits))
        p["group_size"] = .int(Int64(c.groupSize))
        p["damp"] = .double(c.percdamp)
        p["reference_compat"] = .array(c.compat.flagNames.map { .string($0) })
        p["format"] = .string(c.outputFormat.formatName)
        p["allocation_sha256"] = allocationSHA256.map { .string($0) } ?? .null
        if let cal = calibration {
            p["seed"] = .int(Int64(c.seed))
            p["samples"] = .int(Int64(cal.sampleCount))
            p["seq_len"] = .int(Int64(cal.sequenceLength))
            p["calibration_sha256"] = .string(cal.sha256)
            p["calibration_tokens"] = .int(Int64(cal.tokenCount))
            p["activations"] = .string(c.activationStorage.rawValue)
        }
        parameters = p
    }

    func toJSON() -> JSON {
        .object(["format": .string(Self.formatName), "version": .int(Int64(Self.formatVersion)),
                 "parameters": .object(parameters)])
    }

    /// Parses a manifest; nil when the JSON is not one.
    init?(json: JSON) {
        guard json["format"]?.string == Self.formatName, json["version"]?.int == Self.formatVersion,
              let p = json["parameters"]?.object else { return nil }
        parameters = p
    }

    /// "name: stored → requested" for every parameter that differs.
    func differences(from requested: RunManifest) -> [String] {
        var keys = parameters.keys
        for k in requested.parameters.keys where !keys.contains(k) { keys.append(k) }
        return keys.compactMap { k in
            let a = parameters[k] ?? .null, b = requested.parameters[k] ?? .null
            return a == b ? nil : "\(k) \(a.serialized()) → \(b.serialized())"
        }
    }

    static func absolute(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.path
    }

    // MARK: Model fingerprint

    /// Identifies the weights cheaply: the config, and for every weight file its name, size and
    /// the sha256 of its first and last MiB (safetensors headers and GGUF tensor tables live at
    /// the start; a different checkpoint of the same architecture differs in the data).
    static func fingerprint(of model: LoadedModel) throws -> String {
        var hash = SHA256()
        var configText = model.config.toJSON().serialized(sortedKeys: true)
        configText.withUTF8 { hash.update(UnsafeRawBufferPointer($0)) }
        let files: [String]
        if let checkpoint = model.weights as? SafetensorsCheckpoint {
            files = checkpoint.shards.map(\.path)
        } else {
            files = [model.location]
        }
        for path in files {
            let file = try MappedFile(path: path)
            let chunk = 1 << 20
            var header = "\((path as NSString).lastPathComponent):\(file.count);"
            header.withUTF8 { hash.update(UnsafeRawBufferPointer($0)) }
            withExtendedLifetime(file) {
                let bytes = file.bytes
                hash.update(UnsafeRawBufferPointer(rebasing: bytes[0 ..< min(chunk, bytes.count)]))
                if bytes.count > chunk {
                    hash.update(UnsafeRawBufferPointer(rebasing: bytes[max(chunk, bytes.count - chunk) ..< bytes.count]))
                }
            }
        }
        return hash.finalize()
    }
}
