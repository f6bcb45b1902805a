import Foundation
import SlimKernels
import SlimIO
import SlimModel
import SlimPacking
import SlimQuant
import SlimRuntime

// One decoder layer of the sequential loop (spec §1.4):
//   (a) full-precision forward of every calibration window, accumulating the Hessians of the
//       four distinct linear inputs (q/k/v share one, gate/up another);
//   (b) SliM-LLM without an allocation file: a second full-precision forward feeding the SBA
//       searches (they need the final Hessian for their salience ranking, hence two passes);
//   (c) quantize q, k, v, o, gate, up, down (reference order) and swap the fake-quantized
//       weights, rounded to F16 as the output stores them, into the layer;
//   (d) forward with the quantized layer, in place: the next layer's inputs.
// As in the reference, every linear of the layer sees full-precision inputs (not "true
// sequential"); only the propagation between layers uses quantized weights.

/// The outcome of one layer: what the work directory commits.
struct LayerOutcome {
    let tensors: [StreamedTensor]
    let allocation: [String: [Int]]
    let modules: [ModuleReport]
    let timings: LayerTimings
}

/// Quantizes decoder layers one at a time against a shared activation buffer.
final class LayerQuantizer {
    let model: LoadedModel
    let configuration: PipelineConfiguration
    /// Bits per group from `--allocation`, by layer (nil: uniform or SBA).
    let fixedAllocation: [[String: [Int]]]?
    /// Checked between windows and modules; true abandons the layer.
    let shouldStop: () -> Bool
    /// Reports overall progress units (windows through a pass, modules quantized).
    let progress: (_ layer: Int, _ stage: PipelineStage, _ units: Int) -> Void
    let report: (ModuleReport) -> Void

    init(model: LoadedModel, configuration: PipelineConfiguration, fixedAllocation: [[String: [Int]]]?,
         shouldStop: @escaping () -> Bool, progress: @escaping (Int, PipelineStage, Int) -> Void,
         report: @escaping (ModuleReport) -> Void) {
        self.model = model
        self.configuration = configuration
        self.fixedAllocation = fixedAllocation
        self.shouldStop = shouldStop
        self.progress = progress
        self.report = report
    }

    /// Thrown inside a layer when `shouldStop` turned true; the caller maps it to
    /// `PipelineInterrupted` with the last committed layer.
    struct Stopped: Error {}

    /// Forward passes per layer (for progress units): Hessian, SBA search, propagation.
    func passes(layer: Int) -> Int {
        guard configuration.needsCalibration else { return 0 }
        let last = layer == model.config.numHiddenLayers - 1
        return 1 + (runsSearch ? 1 : 0) + (last ? 0 : 1)
    }

    /// True when SBA runs (slim without an allocation file).
    var runsSearch: Bool { configuration.method == .slim && fixedAllocation == nil }

    private func checkStop() throws { if shouldStop() { throw Stopped() } }

    private static func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    // MARK: - One layer

    /// Runs steps (a)–(d) for `layer`. `inputs` holds the layer's inputs on entry and, unless
    /// this is the last layer, the next layer's inputs on return (RTN: nil, no passes).
    func quantize(layer: Int, inputs: ActivationStore?) throws -> LayerOutcome {
        let c = configuration
        var timings = LayerTimings()
        var t0 = DispatchTime.now().uptimeNanoseconds
        let runner = try LayerRunner(source: model.weights, config: model.config, layer: layer, path: model.path,
                                     threads: c.threads)
        let options = c.quantizationOptions
        timings.load = Self.seconds(since: t0)

        // (a) Hessians.
        var hessians: [LinearInput: [Float]] = [:]
        if c.needsCalibration, let inputs {
            t0 = DispatchTime.now().uptimeNanoseconds
            hessians = try accumulateHessians(runner: runner, inputs: inputs, layer: layer)
            timings.hessian = Self.seconds(since: t0)
        }

        // One quantizer per module (q/k/v share a Hessian array; copies happen only on write).
        t0 = DispatchTime.now().uptimeNanoseconds
        var quantizers: [LinearKind: LinearQuantizer] = [:]
        for kind in LinearKind.allCases {
            let w = try runner.denseWeight(kind)
            quantizers[kind] = try LinearQuantizer(weight: Array(w.buffer), rows: w.rows, columns: w.cols,
                                                   hessian: hessians[LinearInput(kind)], options: options)
        }
        hessians = [:]
        timings.quantize += Self.seconds(since: t0)

        // (b) SBA, or the allocation from the file / uniform.
        var allocations: [LinearKind: BitAllocation] = [:]
        var searchBest: [LinearKind: Int] = [:]
        if let fixed = fixedAllocation {
            for kind in LinearKind.allCases {
                let bits = fixed[layer][AllocationFile.key(kind)] ?? []
                allocations[kind] = .fixed(bits.map { UInt8(clamping: $0) })
            }
        } else if runsSearch, let inputs {
            t0 = DispatchTime.now().uptimeNanoseconds
            let results = try searchAllocations(runner: runner, quantizers: quantizers, inputs: inputs, layer: layer)
            for kind in LinearKind.allCases {
                if let r = results[kind] {
                    allocations[kind] = .mixed(count: r.best)
                    searchBest[kind] = r.best
                } else {
                    allocations[kind] = .uniform
                }
            }
            timings.search = Self.seconds(since: t0)
        } else {
            for kind in LinearKind.allCases { allocations[kind] = .uniform }
        }

        // (c) Quantize and swap in.
        t0 = DispatchTime.now().uptimeNanoseconds
        var tensors: [StreamedTensor] = []
        var bitsByKey: [String: [Int]] = [:]
        var modules: [ModuleReport] = []
        let linearModules = model.layout.linearModules(layer: layer)
        for (kind, module) in zip(LinearKind.allCases, linearModules) {
            try checkStop()
            guard let quantizer = quantizers.removeValue(forKey: kind), let allocation = allocations[kind] else { continue }
            let q: QuantizedLinear
            do {
                q = try quantizer.quantize(allocation: allocation)
            } catch {
                throw RuntimeError("layer \(layer) \(AllocationFile.key(kind)): \(error)")
            }
            // The next layer sees exactly the weights the output stores.
            let stored: [Float]
            switch configuration.outputFormat {
            case .packed:
                let packed: PackedLinear
                do {
                    packed = try PackedLinear(rows: q.rows, columns: q.columns, groupSize: q.groupSize, bits: q.bits,
                                              scales: q.scales, zeros: q.zeros, codes: q.codes)
                } catch {
                    throw RuntimeError("layer \(layer) \(AllocationFile.key(kind)): cannot pack: \(error)")
                }
                stored = packed.dequantize()
                tensors += packed.streamedTensors(prefix: PackedFormat.prefix(ofWeight: module.weightName))
            case .fakeQuant:
                let halves = try Self.halfPrecision(q.dequantized, module: module)
                stored = [Float](unsafeUninitializedCapacity: halves.count) { out, n in
                    if let dst = out.baseAddress {
                        halves.withUnsafeBufferPointer { Kernels.convertF16ToF32($0.baseAddress!, dst, count: halves.count) }
                    }
                    n = halves.count
                }
                tensors.append(StreamedTensor(name: module.weightName, dtype: .f16, shape: [q.rows, q.columns]) { emit in
                    try halves.withUnsafeBytes { try emit($0) }
                })
            }
            try runner.layerWeights.replace(kind, with: DenseLinear(weight: FloatTensor(shape: [q.rows, q.columns], values: stored),
                                                                    bias: runner.bias(kind)))
            let bits = q.bits.map(Int.init)
            bitsByKey[AllocationFile.key(kind)] = bits
            let m = ModuleReport(layer: layer, kind: kind, rows: q.rows, columns: q.columns, bits: bits,
                                 searchBest: searchBest[kind], proxyLoss: q.stats.proxyLoss,
                                 meanSquaredError: q.stats.meanSquaredError, seconds: q.stats.seconds)
            modules.append(m)
            report(m)
            progress(layer, .quantize, 1)
        }
        timings.quantize += Self.seconds(since: t0)

        // (d) The next layer's inputs, through the quantized layer (not needed after the last).
        if let inputs, layer + 1 < model.config.numHiddenLayers {
            t0 = DispatchTime.now().uptimeNanoseconds
            try propagate(runner: runner, inputs: inputs, layer: layer)
            timings.propagate = Self.seconds(since: t0)
        }
        return LayerOutcome(tensors: tensors, allocation: bitsByKey, modules: modules, timings: timings)
    }

    // MARK: - Passes

    /// Pass (a): H = (2/N)·Σ XᵀX for each distinct linear input.
    private func accumulateHessians(runner: LayerRunner, inputs: ActivationStore, layer: Int) throws -> [LinearInput: [Float]] {
        let cfg = model.config
        var accumulators: [LinearInput: HessianAccumulator] = [:]
        for input in LinearInput.allCases {
            let columns: Int
            switch input {
            case .attention, .mlp: columns = cfg.hiddenSize
            case .attentionOutput: columns = cfg.qProjectionSize
            case .mlpHidden: columns = cfg.intermediateSize
            }
            accumulators[input] = try HessianAccumulator(columns: columns, threads: configuration.threads)
        }
        var hidden = HiddenStates(values: [Float](repeating: 0, count: inputs.windowElements), rows: inputs.rows,
                                  cols: inputs.cols)
        for sample in 0..<inputs.samples {
            try checkStop()
            inputs.load(sample, into: &hidden)
            runner.run(&hidden) { captured in
                guard let base = captured.values.baseAddress else { return }
                accumulators[captured.input]?.add(x: base, rows: captured.rows)
            }
            progress(layer, .hessian, 1)
        }
        return accumulators.mapValues { $0.hessian() }
    }

    /// Pass (b): feeds every module's SBA search with its full-precision inputs.
    private func searchAllocations(runner: LayerRunner, quantizers: [LinearKind: LinearQuantizer], inputs: ActivationStore,
                                   layer: Int) throws -> [LinearKind: SBAResult] {
        var searches: [LinearKind: BitAllocationSearch] = [:]
        for kind in LinearKind.allCases {
            guard let q = quantizers[kind] else { continue }
            let bias = runner.bias(kind).map { Array($0.buffer) }
            do {
                searches[kind] = try q.makeBitSearch(bias: bias)
            } catch {
                throw RuntimeError("layer \(layer) \(AllocationFile.key(kind)): \(error)")
            }
        }
        var hidden = HiddenStates(values: [Float](repeating: 0, count: inputs.windowElements), rows: inputs.rows,
                                  cols: inputs.cols)
        var failure: Error?
        for sample in 0..<inputs.samples {
            try checkStop()
            inputs.load(sample, into: &hidden)
            runner.run(&hidden) { captured in
                guard failure == nil, let base = captured.values.baseAddress else { return }
                for kind in captured.input.consumers {
                    do {
                        try searches[kind]?.add(x: base, rows: captured.rows)
                    } catch {
                        failure = RuntimeError("layer \(layer) \(AllocationFile.key(kind)), calibration window \(sample): \(error)")
                    }
                }
            }
            if let failure { throw failure }
            progress(layer, .search, 1)
        }
        return searches.compactMapValues { $0.result() }
    }

    /// Pass (d): every window through the (now quantized) layer, in place.
    private func propagate(runner: LayerRunner, inputs: ActivationStore, layer: Int) throws {
        var hidden = HiddenStates(values: [Float](repeating: 0, count: inputs.windowElements), rows: inputs.rows,
                                  cols: inputs.cols)
        for sample in 0..<inputs.samples {
            try checkStop()
            inputs.load(sample, into: &hidden)
            runner.run(&hidden)
            try inputs.store(sample, from: hidden, what: "layer \(layer) output")
            progress(layer, .propagate, 1)
        }
    }

    // MARK: - Helpers

    /// The F16 bit patterns of a fake-quantized weight (what the output stores and the next
    /// layers see).
    /// - Throws: `RuntimeError` when a value does not fit in F16.
    static func halfPrecision(_ values: [Float], module: LinearModule) throws -> [UInt16] {
        guard !values.isEmpty else { return [] }
        let halves = [UInt16](unsafeUninitializedCapacity: values.count) { out, n in
            values.withUnsafeBufferPointer { Kernels.convertF32ToF16($0.baseAddress!, out.baseAddress!, count: values.count) }
            n = values.count
        }
        if let bad = halves.withUnsafeBufferPointer({ ActivationStore.firstInfiniteHalf($0.baseAddress!, count: $0.count) }) {
            throw RuntimeError("\(module.weightName): quantized value \(values[bad]) does not fit in F16")
        }
        return halves
    }
}
