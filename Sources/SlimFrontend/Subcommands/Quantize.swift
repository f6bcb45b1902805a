import Dispatch
import Foundation
import SlimData
import SlimIO
import SlimKernels
import SlimPipeline
import SlimQuant

/// `slim-quant quantize`: RTN, GPTQ or SliM-LLM quantization into a slim-packed checkpoint.
struct QuantizeCommand: SlimCommand {
    static let configuration = CommandConfiguration(
        name: "quantize",
        abstract: "Quantize a model with RTN, GPTQ or SliM-LLM into a packed mixed-precision checkpoint.",
        usage: "--model <dir|file.gguf> --bits <2|3|4> --method <rtn|gptq|slim> --out <dir> [options]",
        discussion: """
            Runs the reference's layer-by-layer loop: calibration windows (default 128 × 2048 tokens of
            WikiText-2 train, joined with " ", at CPython random.seed(seed) offsets) pass through each
            decoder layer to accumulate the GPTQ Hessians; slim adds a second pass for the bit-allocation
            search (SBA); the seven linears are quantized and the windows continue through the quantized
            layer. RTN needs no calibration.
            The output directory holds config.json (with a quantization_config block), the tokenizer
            files, allocation.json (bits of every group) and model.safetensors in the slim-packed format
            (docs/FORMAT.md: codes at each group's bit width, 1-bit groups as sign bits, fp16 scales;
            other tensors as stored, or as --unquantized-dtype f16|bf16|f32): eval-ppl, generate, bench and inspect run it directly, and
            convert --dequantize expands it to fp16. --format fake-quant writes the dequantized
            weights as F16 instead.
            After each layer the state is saved in the work directory (default <out>.work); rerunning the
            same command resumes there (byte-identical result), Ctrl-C stops after saving what is
            finished (exit 130), --no-resume starts over. The work directory is removed on success.
            --allocation reuses an allocation.json (validated against the model; no SBA search).
            --reference-compat reproduces quirks of the official code (spec §11.2): doubleDamp, symLeak,
            searchRange, klBiasOnlyInReference, fp32Parameters, ternarySign (needs --format fake-quant),
            rankShortGroup, or all.
            """,
        examples: [
            "slim-quant quantize --model ~/.cache/slim-quant-fixtures/smollm2-135m-f32 --bits 2 --method slim --out smollm2-slim-w2",
            "slim-quant quantize -m ../shared/models/stories260K --bits 4 --method gptq --group-size 32 --samples 8 --seq-len 256 --out s260k-gptq4",
            "slim-quant quantize -m model --bits 3 --method slim --allocation other/allocation.json --out model-w3",
        ],
        options: [
            .option("model", short: "m", value: "<dir|file.gguf>", help: "Model directory or GGUF file."),
            .option("bits", short: "b", value: "<n>", help: "Target bits N (slim: groups get N-1, N or N+1)."),
            .option("method", value: "<rtn|gptq|slim>", help: "Quantization method."),
            .option("out", short: "o", value: "<dir>", help: "Output checkpoint directory."),
            .option("group-size", short: "g", value: "<n>", help: "Input columns per group (128, 64, 32, ...).", default: "128"),
            .option("damp", value: "<x>", help: "GPTQ damping relative to mean(diag H).", default: "0.01"),
            .option("samples", short: "n", value: "<n>", help: "Calibration windows.", default: "128"),
            .option("seq-len", value: "<n>", help: "Tokens per calibration window.", default: "2048"),
            .option("seed", value: "<n>", help: "Calibration sampling seed (CPython random.seed).", default: "0"),
            .option("calibration", value: "<file>", help: "Calibrate on a UTF-8 text file instead of a dataset."),
            .option("dataset", short: "d", value: "<wikitext2|ptb|c4>", help: "Calibration dataset (train split).", default: "wikitext2"),
            .option("data-dir", value: "<dir>", help: "Dataset directory (default: $SLIM_DATA_DIR, else ../shared/data)."),
            .option("allocation", value: "<file>", help: "Reuse the bit allocation of an allocation.json."),
            .option("reference-compat", value: "<flags>", help: "Reference quirks: comma list or all (default: none)."),
            .option("activations", value: "<f32|f16>", help: "Storage of the calibration activations.", default: "f32"),
            .option("format", value: "<packed|fake-quant>", help: "Weights as slim-packed or as dequantized F16.", default: "packed"),
            .option("unquantized-dtype", value: "<source|f16|bf16|f32>",
                    help: "Element type of the tensors left unquantized (embedding, classifier, norms).", default: "source"),
            .option("threads", short: "t", value: "<n>", help: "Worker threads.", default: "all cores"),
            .option("work-dir", value: "<dir>", help: "Resume state directory (default: <out>.work)."),
            .flag("no-resume", help: "Discard the state of an interrupted run and start over."),
            .flag("json", help: "Print a JSON summary at the end."),
        ])

    /// Test hook: stop as if interrupted right after this layer was saved.
    nonisolated(unsafe) static var testStopAfterLayer: Int?

    let pipeline: PipelineConfiguration
    let json: Bool

    init(_ args: ParsedArguments) throws(UsageError) {
        let model = try args.required("model", "<dir|file.gguf>")
        let out = try args.required("out", "<dir>")
        guard args.isSet("method") else { throw UsageError("missing required option '--method <rtn|gptq|slim>'") }
        let method = try args.choice("method", default: QuantMethod.slim)
        guard args.isSet("bits") else { throw UsageError("missing required option '--bits <n>'") }
        let bits = try args.int("bits", default: 0, in: 1...8)
        let groupSize = try args.int("group-size", default: 128, in: 1...1_048_576)
        let damp = try args.double("damp", default: 0.01, in: 0...1_000_000)
        let samples = try args.int("samples", default: 128, in: 1...1_000_000)
        let seqLen = try args.int("seq-len", default: 2048, in: 2...1_048_576)
        let seed = try args.int("seed", default: 0, in: 0...Int.max)
        let calibration: CalibrationSource
        if let file = args.string("calibration") {
            guard !args.isSet("dataset") else { throw UsageError("'--calibration' and '--dataset' cannot be combined") }
            guard !args.isSet("data-dir") else { throw UsageError("'--data-dir' applies to '--dataset', not to '--calibration'") }
            calibration = .file(file)
        } else {
            calibration = .dataset(try args.choice("dataset", default: DatasetName.wikitext2), dataDir: args.string("data-dir"))
        }
        var compat: ReferenceCompat = []
        if let text = args.string("reference-compat") {
            let parsed = ReferenceCompat.parse(text)
            if let unknown = parsed.unknown {
                let allowed = ReferenceCompat.names.map(\.name).joined(separator: ", ")
                throw UsageError("invalid value for '--reference-compat': '\(unknown)' (expected a comma list of: \(allowed), or all)")
            }
            compat = parsed.flags
        }
        let storage = try args.choice("activations", default: ActivationStorage.f32)
        let threads = try args.int("threads", default: Kernels.defaultThreads, in: 1...4096)
        var config = PipelineConfiguration(
            modelPath: model, outputPath: out, method: method, bits: bits, groupSize: groupSize, percdamp: damp,
            samples: samples, sequenceLength: seqLen, seed: seed, calibration: calibration,
            allocationPath: args.string("allocation"), compat: compat, activationStorage: storage, threads: threads,
            workDirectory: args.string("work-dir"), resume: !args.has("no-resume"), toolVersion: SlimQuantCommand.version)
        config.outputFormat = try args.choice("format", default: OutputFormat.packed)
        config.unquantizedDType = try args.choice("unquantized-dtype", default: UnquantizedDType.source).dtype
        config.stopAfterLayer = Self.testStopAfterLayer
        pipeline = config
        json = args.has("json")
    }

    func validate() throws(UsageError) {
        do {
            try pipeline.validate()
        } catch let e as QuantError {
            if case .invalidOption(let message) = e { throw UsageError(message) }
            throw UsageError(e.description)
        } catch {
            throw UsageError("\(error)")
        }
    }

    func run(console: Console) throws {
        let c = pipeline
        let interactive = isatty(STDERR_FILENO) == 1
        // Log lines clear a progress bar drawn in place first.
        func log(_ line: String) { console.log(interactive ? "\r\u{1B}[K" + line : line) }
        var bar: ProgressBar?
        var layers = 0
        let observer: (PipelineEvent) -> Void = { event in
            switch event {
            case .calibration(let set):
                for w in set.warnings { log("warning: \(w)") }
                log("calibration: \(set.label) (\(set.files.joined(separator: ", "))), sha256 \(set.sha256.prefix(16))…, "
                    + "\(set.tokenCount) tokens, \(set.sampleCount) windows × \(set.sequenceLength), seed \(set.seed)")
            case .started(let first, let count, let units):
                layers = count
                if first > 0 { log("resuming at layer \(first) of \(count) from \(c.workDirectoryPath)") }
                log("quantize: \(c.method.rawValue) \(c.bits)-bit, group \(c.groupSize), \(count) layers, \(c.threads) threads"
                    + (c.allocationPath.map { ", allocation from \($0)" } ?? ""))
                bar = ProgressBar(console: console, label: "quantize", total: units)
            case .progress(let layer, let stage, let done, _):
                bar?.update(done, detail: "layer \(layer + 1)/\(layers) \(stage.rawValue)")
            case .module(let m):
                log(Self.moduleLine(m, layers: layers))
            case .layerFinished(let r):
                let t = r.timings
                log(String(format: "layer %d/%d done in %.1f s (load %.1f, hessian %.1f, sba %.1f, quantize %.1f, propagate %.1f, save %.1f)",
                           r.layer + 1, layers, t.total, t.load, t.hessian, t.search, t.quantize, t.propagate, t.save))
            case .writingOutput(let path):
                log("writing \(path)")
            }
        }
        let flag = InterruptFlag()
        let summary: PipelineSummary
        do {
            summary = try withInterruptHandler(flag, log: log) {
                try QuantizationPipeline(configuration: c, observer: observer, shouldStop: { flag.isRaised }).run()
            }
        } catch let e as PipelineInterrupted {
            log("interrupted: \(e.nextLayer) of \(e.layers) layers are saved in \(e.workDirectory); "
                + "run the same command again to resume (or add --no-resume to start over)")
            throw CommandExit(.interrupted)
        }
        report(summary, console: console)
    }

    private func report(_ s: PipelineSummary, console: Console) {
        if json {
            console.print(s.toJSON(configuration: pipeline).serialized(pretty: true))
            return
        }
        let h = s.allocation.histogram
        let groups = h.keys.sorted().map { "\($0)-bit \(h[$0]!)" }.joined(separator: ", ")
        console.print(String(format: "wrote %@: %@ %d-bit, group %d, %.4f bits/weight (groups: %@), %@",
                             s.outputPath, pipeline.method.rawValue, pipeline.bits, pipeline.groupSize,
                             s.allocation.averageBits, groups, ProgressBar.duration(s.seconds)))
    }

    /// One line per quantized module: bits histogram, SBA choice, GPTQ error, time.
    static func moduleLine(_ m: ModuleReport, layers: Int) -> String {
        let name = AllocationFile.key(m.kind).padding(toLength: 16, withPad: " ", startingAt: 0)
        let search = m.searchBest.map { " i*=\($0)" } ?? ""
        return String(format: "  layer %d/%d %@ %5d×%-5d [%@]%@  err %.4e  mse %.3e  %.2f s",
                      m.layer + 1, layers, name, m.rows, m.columns, m.histogramText, search, m.proxyLoss,
                      m.meanSquaredError, m.seconds)
    }
}

// MARK: - SIGINT

/// Set by the first SIGINT; polled by the pipeline between steps.
final class InterruptFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false

    var isRaised: Bool { lock.withLock { raised } }

    /// Sets the flag; returns whether it was already set.
    func raise() -> Bool {
        lock.withLock {
            defer { raised = true }
            return raised
        }
    }
}

/// Runs `body` with SIGINT routed to `flag` (a DispatchSource on a background queue, so the
/// handler can do more than async-signal-safe work). A second SIGINT exits at once with 130:
/// the work directory is consistent at every instant, only the current layer is lost.
func withInterruptHandler<T>(_ flag: InterruptFlag, log: @escaping (String) -> Void, _ body: () throws -> T) throws -> T {
    signal(SIGINT, SIG_IGN)
    let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue.global())
    source.setEventHandler {
        if flag.raise() {
            log("second interrupt: exiting now (the last finished layer is saved)")
            exit(ExitCode.interrupted.rawValue)
        }
        log("interrupt: stopping at the next step; press Ctrl-C again to exit at once")
    }
    source.resume()
    defer {
        source.cancel()
        signal(SIGINT, SIG_DFL)
    }
    return try body()
}

/// `--unquantized-dtype`: keep the source's element types, or convert every unquantized
/// floating-point tensor (GPTQ-style checkpoints keep them in F16).
enum UnquantizedDType: String, CaseIterable {
    case source, f16, bf16, f32

    var dtype: DType? {
        switch self {
        case .source: return nil
        case .f16: return .f16
        case .bf16: return .bf16
        case .f32: return .f32
        }
    }
}
