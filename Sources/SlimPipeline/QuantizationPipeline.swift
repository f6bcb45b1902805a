import Foundation
import SlimData
import SlimIO
import SlimModel
import SlimPacking
import SlimQuant
import SlimRuntime

/// The whole `quantize` run: calibration, the layer-by-layer loop with resumable state, and the
/// output checkpoint (spec §1, Appendix B).
///
/// Memory: besides the source's memory map, the run holds the calibration activations (one
/// buffer of N × L × hidden values, updated in place layer by layer), one decoder layer's fp32
/// weights, its Hessians (C² per distinct input) and the SBA candidates of one layer. The
/// fake-quantized layers go to the work directory as they finish, and the output is streamed
/// from there, so the quantized model is never held in memory.
///
/// Determinism: the same model, parameters and calibration text give byte-identical outputs,
/// whatever the thread count and however often the run was interrupted and resumed (each
/// layer depends only on its saved inputs and the source weights).
public final class QuantizationPipeline {
    public let configuration: PipelineConfiguration
    private let observer: (PipelineEvent) -> Void
    private let shouldStop: () -> Bool

    /// - Parameters:
    ///   - observer: receives progress events on the calling thread.
    ///   - shouldStop: polled between calibration windows and modules; returning true stops the
    ///     run at the next check, abandoning the current layer (the last committed layer stays in
    ///     the work directory) and throwing `PipelineInterrupted`.
    public init(configuration: PipelineConfiguration, observer: @escaping (PipelineEvent) -> Void = { _ in },
                shouldStop: @escaping () -> Bool = { false }) {
        self.configuration = configuration
        self.observer = observer
        self.shouldStop = shouldStop
    }

    /// Runs (or resumes) the quantization and writes the output checkpoint.
    /// - Throws: `PipelineInterrupted` when stopped; `FileError`, `QuantError` or
    ///   `RuntimeError` with a one-line description for bad inputs (model, calibration text,
    ///   allocation file, output path, work directory with other parameters) and failures.
    public func run() throws -> PipelineSummary {
        let start = DispatchTime.now().uptimeNanoseconds
        let c = configuration
        try c.validate()
        let model = try LoadedModel(path: c.modelPath)
        if model.config.packing != nil {
            throw FileError(c.modelPath, "is already a slim-packed checkpoint: quantize the original model "
                + "(or expand this one with convert --dequantize first)")
        }
        let layers = model.config.numHiddenLayers
        try CheckpointOutput.checkDestination(c.outputPath, model: model)

        // A reused allocation must fit this model and these options before any work starts.
        var fixed: [[String: [Int]]]?
        var allocationSHA: String?
        if let path = c.allocationPath {
            let file = try AllocationFile.load(path: path)
            try file.validate(layout: model.layout, path: path)
            guard file.groupSize == c.groupSize else {
                throw FileError(path, "allocation uses group size \(file.groupSize), but --group-size is \(c.groupSize)")
            }
            guard file.bits == c.bits else {
                throw FileError(path, "allocation targets \(file.bits) bits, but --bits is \(c.bits)")
            }
            fixed = file.layers
            allocationSHA = try CalibrationSet.sha256(of: [path])
        }

        var calibration: CalibrationSet?
        if c.needsCalibration {
            let tokenizer = try model.tokenizer()
            let set = try CalibrationSet.load(c.calibration, tokenizer: tokenizer, count: c.samples,
                                              length: c.sequenceLength, seed: c.seed)
            if let bad = set.windows.lazy.flatMap({ $0 }).first(where: { $0 < 0 || $0 >= model.config.vocabSize }) {
                throw FileError(model.path, "the tokenizer produced id \(bad), outside the model's vocabulary (\(model.config.vocabSize))")
            }
            calibration = set
            observer(.calibration(set))
        }

        let manifest = RunManifest(configuration: c, model: model, modelFingerprint: try RunManifest.fingerprint(of: model),
                                   calibration: calibration, allocationSHA256: allocationSHA)
        let work = try WorkDirectory.open(path: c.workDirectoryPath, manifest: manifest, resume: c.resume)
        let firstLayer = work.state.nextLayer

        // The activations entering the first layer to process.
        var inputs: ActivationStore?
        if let calibration, firstLayer < layers {
            inputs = firstLayer == 0 ? try embed(calibration, model: model)
                : try work.loadInputs(samples: calibration.sampleCount, rows: calibration.sequenceLength,
                                      cols: model.config.hiddenSize, storage: c.activationStorage)
        }
        let activationBytes = inputs?.byteCount ?? 0

        // Progress units: each window through each pass, plus each module quantized.
        var unitsDone = 0
        var unitsTotal = 0
        let quantizer = LayerQuantizer(
            model: model, configuration: c, fixedAllocation: fixed, shouldStop: shouldStop,
            progress: { [observer] layer, stage, units in
                unitsDone += units
                observer(.progress(layer: layer, stage: stage, unitsDone: unitsDone, unitsTotal: unitsTotal))
            },
            report: { [observer] in observer(.module($0)) })
        let samples = calibration?.sampleCount ?? 0
        for l in firstLayer..<layers { unitsTotal += quantizer.passes(layer: l) * samples + LinearKind.allCases.count }
        observer(.started(firstLayer: firstLayer, layers: layers, unitsTotal: unitsTotal))

        for l in firstLayer..<layers {
            let outcome: LayerOutcome
            do {
                outcome = try quantizer.quantize(layer: l, inputs: inputs)
            } catch is LayerQuantizer.Stopped {
                throw PipelineInterrupted(nextLayer: l, layers: layers, workDirectory: work.path)
            }
            let t0 = DispatchTime.now().uptimeNanoseconds
            try work.commit(layer: l, tensors: outcome.tensors, nextInputs: l + 1 < layers ? inputs : nil,
                            allocation: outcome.allocation, modules: outcome.modules)
            var timings = outcome.timings
            timings.save = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            observer(.layerFinished(LayerReport(layer: l, modules: outcome.modules, timings: timings)))
            if c.stopAfterLayer == l || shouldStop() {
                throw PipelineInterrupted(nextLayer: l + 1, layers: layers, workDirectory: work.path)
            }
        }
        inputs = nil

        // Output.
        let allocation = allocationFile(model: model, calibration: calibration, layers: work.state.allocation)
        observer(.writingOutput(path: c.outputPath))
        try CheckpointOutput.write(model: model, to: c.outputPath,
                                   layerFiles: (0..<layers).map { work.file(WorkDirectory.layerFileName($0)) },
                                   allocation: allocation, format: c.outputFormat, unquantizedDType: c.unquantizedDType,
                                   quantizationConfig: quantizationConfig(allocation: allocation, calibration: calibration))
        try work.remove()
        return PipelineSummary(outputPath: c.outputPath, allocation: allocation, modules: work.state.modules,
                               calibrationLabel: calibration?.label, calibrationSHA256: calibration?.sha256,
                               calibrationTokens: calibration?.tokenCount, resumedFromLayer: firstLayer,
                               seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                               activationBytes: activationBytes)
    }

    // MARK: - Pieces

    /// Layer-0 inputs: the embedding rows of every calibration window.
    private func embed(_ calibration: CalibrationSet, model: LoadedModel) throws -> ActivationStore {
        guard let view = model.weights.tensor(TensorLayout.embedTokens) else {
            throw FileError(model.path, "missing tensor \(TensorLayout.embedTokens)")
        }
        let table = try FloatTensor(view, source: model.weights, path: model.path)
        let h = model.config.hiddenSize, length = calibration.sequenceLength
        let store = try ActivationStore(samples: calibration.sampleCount, rows: length, cols: h,
                                        storage: configuration.activationStorage)
        var hidden = HiddenStates(values: [Float](repeating: 0, count: length * h), rows: length, cols: h)
        for (s, window) in calibration.windows.enumerated() {
            hidden.values.withUnsafeMutableBufferPointer { out in
                for (t, id) in window.enumerated() {
                    (out.baseAddress! + t * h).update(from: table.pointer + id * h, count: h)
                }
            }
            try store.store(s, from: hidden, what: "the embedding")
        }
        return store
    }

    /// The allocation file of this run.
    private func allocationFile(model: LoadedModel, calibration: CalibrationSet?, layers: [[String: [Int]]]) -> AllocationFile {
        let c = configuration
        let name = (RunManifest.absolute(model.path) as NSString).lastPathComponent
        let cal = calibration.map {
            AllocationFile.Calibration(file: $0.fileName, sha256: $0.sha256, samples: $0.sampleCount,
                                       sequenceLength: $0.sequenceLength)
        }
        return AllocationFile(model: name, method: c.method.rawValue, bits: c.bits, groupSize: c.groupSize, seed: c.seed,
                              calibration: cal, toolVersion: c.toolVersion, shapes: AllocationFile.shapes(of: model.layout),
                              layers: layers)
    }

    /// config.json's `quantization_config` block. Holds only run parameters (no timings), so
    /// identical runs write identical files.
    private func quantizationConfig(allocation: AllocationFile, calibration: CalibrationSet?) -> JSONObject {
        let c = configuration
        var q = JSONObject()
        q["quant_method"] = .string(CheckpointOutput.quantMethod)
        q["format"] = .string(c.outputFormat.formatName)
        if c.outputFormat == .packed { q["format_version"] = .int(Int64(PackedFormat.version)) }
        q["method"] = .string(c.method.rawValue)
        q["bits"] = .int(Int64(c.bits))
        q["group_size"] = .int(Int64(c.groupSize))
        q["damp"] = c.method == .rtn ? .null : .double(c.percdamp)
        q["seed"] = calibration == nil ? .null : .int(Int64(c.seed))
        q["samples"] = calibration.map { .int(Int64($0.sampleCount)) } ?? .null
        q["seq_len"] = calibration.map { .int(Int64($0.sequenceLength)) } ?? .null
        q["calibration"] = calibration.map { .string($0.label) } ?? .null
        q["calibration_file"] = calibration.map { .string($0.fileName) } ?? .null
        q["calibration_sha256"] = calibration.map { .string($0.sha256) } ?? .null
        q["calibration_tokens"] = calibration.map { .int(Int64($0.tokenCount)) } ?? .null
        q["activations"] = calibration == nil ? .null : .string(c.activationStorage.rawValue)
        q["allocation"] = .string("allocation.json")
        q["allocation_source"] = c.allocationPath.map { .string(($0 as NSString).lastPathComponent) }
            ?? .string(c.method == .slim ? "sba" : "uniform")
        q["average_bits"] = .double(allocation.averageBits)
        q["reference_compat"] = .array(c.compat.flagNames.map { .string($0) })
        q["tool"] = .string("slim-quant")
        q["tool_version"] = .string(c.toolVersion)
        return q
    }
}
