import Foundation
import SlimIO
import SlimModel

// What the pipeline tells its caller while it runs (progress events) and when it ends (a
// summary, or an interruption with the state kept for a resume).

// MARK: - Per module

/// How one linear module was quantized.
public struct ModuleReport: Sendable, Equatable {
    public let layer: Int
    public let kind: LinearKind
    /// [out, in].
    public let rows: Int
    public let columns: Int
    /// Bits of each group, in column order.
    public let bits: [Int]
    /// The SBA result i* (groups moved to N−1 and to N+1), nil when no search ran.
    public let searchBest: Int?
    /// GPTQ's proxy loss Σ((w − q)/U_jj)² (RTN: Σ(w − q)²).
    public let proxyLoss: Double
    /// Mean squared weight error against the original weight.
    public let meanSquaredError: Double
    /// Wall-clock seconds of the module's quantization (factorization included).
    public let seconds: Double

    public init(layer: Int, kind: LinearKind, rows: Int, columns: Int, bits: [Int], searchBest: Int?,
                proxyLoss: Double, meanSquaredError: Double, seconds: Double) {
        self.layer = layer
        self.kind = kind
        self.rows = rows
        self.columns = columns
        self.bits = bits
        self.searchBest = searchBest
        self.proxyLoss = proxyLoss
        self.meanSquaredError = meanSquaredError
        self.seconds = seconds
    }

    /// Groups per bit width.
    public var histogram: [Int: Int] { Dictionary(grouping: bits, by: { $0 }).mapValues(\.count) }

    /// "1b×2 2b×8 3b×2".
    public var histogramText: String {
        let h = histogram
        return h.keys.sorted().map { "\($0)b×\(h[$0]!)" }.joined(separator: " ")
    }

    func toJSON() -> JSON {
        .object(["layer": .int(Int64(layer)), "module": .string(AllocationFile.key(kind)),
                 "shape": .array([.int(Int64(rows)), .int(Int64(columns))]),
                 "bits": .array(bits.map { .int(Int64($0)) }),
                 "sba_best": searchBest.map { .int(Int64($0)) } ?? .null,
                 "proxy_loss": .double(proxyLoss), "mse": .double(meanSquaredError), "seconds": .double(seconds)])
    }

    init?(json: JSON) {
        guard let layer = json["layer"]?.int, let key = json["module"]?.string,
              let kind = LinearKind.allCases.first(where: { AllocationFile.key($0) == key }),
              let shape = json["shape"]?.array, shape.count == 2, let rows = shape[0].int, let columns = shape[1].int,
              let bitsJSON = json["bits"]?.array else { return nil }
        // Non-finite statistics are serialized as null.
        let proxy = json["proxy_loss"]?.double ?? .nan, mse = json["mse"]?.double ?? .nan
        let seconds = json["seconds"]?.double ?? .nan
        let bits = bitsJSON.compactMap(\.int)
        guard bits.count == bitsJSON.count else { return nil }
        self.init(layer: layer, kind: kind, rows: rows, columns: columns, bits: bits, searchBest: json["sba_best"]?.int,
                  proxyLoss: proxy, meanSquaredError: mse, seconds: seconds)
    }
}

// MARK: - Per layer

/// Wall-clock seconds of each stage of one decoder layer.
public struct LayerTimings: Sendable, Equatable {
    public var load = 0.0
    /// Pass (a): full-precision forward with Hessian accumulation.
    public var hessian = 0.0
    /// Pass (b): full-precision forward feeding the SBA searches.
    public var search = 0.0
    /// Step (c): quantizing the seven linears.
    public var quantize = 0.0
    /// Step (d): forward with the quantized weights (the next layer's inputs).
    public var propagate = 0.0
    /// Writing the layer's state to the work directory.
    public var save = 0.0

    public var total: Double { load + hessian + search + quantize + propagate + save }
}

public struct LayerReport: Sendable, Equatable {
    public let layer: Int
    public let modules: [ModuleReport]
    public let timings: LayerTimings
}

// MARK: - Events

/// What is happening, for progress displays.
public enum PipelineStage: String, Sendable {
    case hessian = "hessian"
    case search = "sba"
    case quantize = "quantize"
    case propagate = "propagate"
}

public enum PipelineEvent: Sendable {
    /// The calibration windows were drawn.
    case calibration(CalibrationSet)
    /// Work starts at `firstLayer` of `layers` (> 0 when resuming); `unitsTotal` is the size
    /// of the overall progress measure (see `progress`).
    case started(firstLayer: Int, layers: Int, unitsTotal: Int)
    /// Overall progress: `unitsDone` of `unitsTotal` (one unit = one calibration window through
    /// one pass, or one module quantized), plus the current layer and stage.
    case progress(layer: Int, stage: PipelineStage, unitsDone: Int, unitsTotal: Int)
    case module(ModuleReport)
    case layerFinished(LayerReport)
    /// The output checkpoint is being written to `path`.
    case writingOutput(path: String)
}

// MARK: - Outcomes

/// A run stopped on request (SIGINT or a test hook) with its state saved.
public struct PipelineInterrupted: Error, CustomStringConvertible {
    /// The first layer a resume will process.
    public let nextLayer: Int
    public let layers: Int
    public let workDirectory: String

    public var description: String {
        "interrupted with \(nextLayer) of \(layers) layers done; state kept in \(workDirectory)"
    }
}

/// The result of a finished run.
public struct PipelineSummary: Sendable {
    public let outputPath: String
    public let allocation: AllocationFile
    public let modules: [ModuleReport]
    /// The calibration windows (nil for RTN).
    public let calibrationLabel: String?
    public let calibrationSHA256: String?
    public let calibrationTokens: Int?
    /// The layer this process started at (0 unless resumed).
    public let resumedFromLayer: Int
    /// Wall-clock seconds of this process's run.
    public let seconds: Double
    /// Bytes of the inter-layer activation buffer (0 for RTN).
    public let activationBytes: Int

    /// The summary as JSON (the CLI's `--json`).
    public func toJSON(configuration c: PipelineConfiguration) -> JSON {
        let h = allocation.histogram
        var o = JSONObject()
        o["model"] = .string(c.modelPath)
        o["output"] = .string(outputPath)
        o["method"] = .string(c.method.rawValue)
        o["bits"] = .int(Int64(c.bits))
        o["group_size"] = .int(Int64(c.groupSize))
        o["average_bits"] = .double(allocation.averageBits)
        o["group_histogram"] = .object(JSONObject(h.keys.sorted().map { ("\($0)", JSON.int(Int64(h[$0]!))) }))
        if c.needsCalibration {
            o["calibration"] = .object(["label": .string(calibrationLabel ?? ""), "sha256": .string(calibrationSHA256 ?? ""),
                                        "tokens": .int(Int64(calibrationTokens ?? 0)), "samples": .int(Int64(c.samples)),
                                        "seq_len": .int(Int64(c.sequenceLength)), "seed": .int(Int64(c.seed))])
        } else {
            o["calibration"] = .null
        }
        o["resumed_from_layer"] = .int(Int64(resumedFromLayer))
        o["seconds"] = .double(seconds)
        o["activation_bytes"] = .int(Int64(activationBytes))
        o["modules"] = .array(modules.map { $0.toJSON() })
        return .object(o)
    }
}
