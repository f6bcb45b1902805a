import Foundation
import SlimIO
import SlimModel

/// The per-layer, per-module, per-group bit widths of a quantized model, with enough provenance
/// to reproduce it. Written by every `quantize` run as `allocation.json`; `--allocation FILE`
/// reuses one (skipping the SBA search).
///
/// JSON layout (keys in this order):
/// ```
/// { "format": "slim-quant-allocation", "version": 1,
///   "model": "smollm2-135m-f32", "method": "slim", "bits": 2, "group_size": 128, "seed": 0,
///   "calibration": { "file": "...", "sha256": "...", "samples": 128, "sequence_length": 2048 },
///   "tool_version": "0.2.0",
///   "shapes": { "self_attn.q_proj": [576, 576], ..., "mlp.down_proj": [576, 1536] },
///   "layers": [ { "self_attn.q_proj": [1, 2, 3, 2, 2], ... }, ... ] }
/// ```
/// Module keys are relative to the decoder layer, as in the reference's allocation pickles
/// (`self_attn.{q,k,v,o}_proj`, `mlp.{gate,up,down}_proj`). `shapes` ([out, in] per module, the
/// same in every layer of a LLaMA) makes the file self-describing: statistics and the heatmap
/// need no model.
public struct AllocationFile: Equatable, Sendable {
    public static let formatName = "slim-quant-allocation"
    public static let formatVersion = 1

    public struct Calibration: Equatable, Sendable {
        public var file: String
        public var sha256: String
        public var samples: Int
        public var sequenceLength: Int

        public init(file: String, sha256: String, samples: Int, sequenceLength: Int) {
            self.file = file
            self.sha256 = sha256
            self.samples = samples
            self.sequenceLength = sequenceLength
        }
    }

    public var model: String
    public var method: String
    /// Target average bits N.
    public var bits: Int
    public var groupSize: Int
    public var seed: Int
    public var calibration: Calibration?
    public var toolVersion: String
    /// [out, in] features of each module key.
    public var shapes: [String: [Int]]
    /// `layers[l][module]` = bits of each group of that module, in column order.
    public var layers: [[String: [Int]]]

    public init(model: String, method: String, bits: Int, groupSize: Int, seed: Int, calibration: Calibration?,
                toolVersion: String, shapes: [String: [Int]], layers: [[String: [Int]]] = []) {
        self.model = model
        self.method = method
        self.bits = bits
        self.groupSize = groupSize
        self.seed = seed
        self.calibration = calibration
        self.toolVersion = toolVersion
        self.shapes = shapes
        self.layers = layers
    }

    /// The [out, in] shapes of a layout's modules, keyed as in the file.
    public static func shapes(of layout: TensorLayout) -> [String: [Int]] {
        Dictionary(uniqueKeysWithValues: layout.linearModules(layer: 0).map { (key($0.kind), [$0.outFeatures, $0.inFeatures]) })
    }

    /// The key of a module inside its decoder layer, e.g. "mlp.down_proj".
    public static func key(_ kind: LinearKind) -> String { "\(kind.block).\(kind.rawValue)" }
}

// MARK: - Statistics

extension AllocationFile {
    /// Number of groups at each bit width over the whole model.
    public var histogram: [Int: Int] {
        var h: [Int: Int] = [:]
        for layer in layers { for bits in layer.values { for b in bits { h[b, default: 0] += 1 } } }
        return h
    }

    /// Average code bits per weight, weighting each group by its column count (a partial last
    /// group counts less) and each module by its rows. NaN when nothing is allocated.
    public var averageBits: Double {
        var weighted = 0.0, total = 0.0
        for layer in layers {
            for (key, bits) in layer {
                guard let shape = shapes[key], shape.count == 2 else { continue }
                for (g, b) in bits.enumerated() {
                    let cols = Double(max(0, min(groupSize, shape[1] - g * groupSize)))
                    weighted += Double(b) * cols * Double(shape[0])
                    total += cols * Double(shape[0])
                }
            }
        }
        return total > 0 ? weighted / total : .nan
    }

    /// Checks that every linear of every layer has exactly ceil(in/groupSize) groups with bit
    /// widths in 1...8, and nothing else is listed.
    /// - Throws: `FileError` naming `path` and the first problems.
    public func validate(layout: TensorLayout, path: String) throws(FileError) {
        var problems: [String] = []
        for (key, shape) in Self.shapes(of: layout) where shapes[key] != shape {
            problems.append("\(key) is \(shapes[key].map { "\($0)" } ?? "missing") in the file, \(shape) in the model")
        }
        if layers.count != layout.config.numHiddenLayers {
            problems.append("\(layers.count) layers, the model has \(layout.config.numHiddenLayers)")
        }
        for (l, layer) in layers.enumerated() where l < layout.config.numHiddenLayers {
            let modules = layout.linearModules(layer: l)
            let expected = Set(modules.map { Self.key($0.kind) })
            for extra in layer.keys.sorted() where !expected.contains(extra) {
                problems.append("layer \(l): unknown module \"\(extra)\"")
            }
            for m in modules {
                let key = Self.key(m.kind)
                guard let bits = layer[key] else { problems.append("layer \(l): \(key) missing"); continue }
                let groups = (m.inFeatures + groupSize - 1) / groupSize
                if bits.count != groups {
                    problems.append("layer \(l) \(key): \(bits.count) groups, expected \(groups) (\(m.inFeatures) columns / group \(groupSize))")
                }
                if let bad = bits.first(where: { !(1...8).contains($0) }) {
                    problems.append("layer \(l) \(key): bit width \(bad) outside 1...8")
                }
            }
        }
        guard problems.isEmpty else {
            let shown = problems.prefix(5).joined(separator: "; ")
            throw FileError(path, "allocation does not fit the model: \(shown)\(problems.count > 5 ? " (and \(problems.count - 5) more)" : "")")
        }
    }
}

// MARK: - JSON

extension AllocationFile {
    public func toJSON() -> JSON {
        var obj: JSONObject = [
            "format": .string(Self.formatName), "version": .int(Int64(Self.formatVersion)),
            "model": .string(model), "method": .string(method), "bits": .int(Int64(bits)),
            "group_size": .int(Int64(groupSize)), "seed": .int(Int64(seed)),
        ]
        if let c = calibration {
            obj["calibration"] = ["file": .string(c.file), "sha256": .string(c.sha256),
                                  "samples": .int(Int64(c.samples)), "sequence_length": .int(Int64(c.sequenceLength))]
        }
        obj["tool_version"] = .string(toolVersion)
        obj["shapes"] = .object(JSONObject(Self.orderedKeys(shapes).map { ($0, JSON.array(shapes[$0]!.map { .int(Int64($0)) })) }))
        obj["layers"] = .array(layers.map { layer in
            let ordered = Self.orderedKeys(layer)
            return .object(JSONObject(ordered.map { ($0, JSON.array(layer[$0]!.map { .int(Int64($0)) })) }))
        })
        return .object(obj)
    }

    /// Module keys in LinearKind order, then any others alphabetically.
    static func orderedKeys(_ layer: [String: [Int]]) -> [String] {
        let known = LinearKind.allCases.map(key).filter { layer[$0] != nil }
        return known + layer.keys.filter { !known.contains($0) }.sorted()
    }

    /// Parses an allocation file's JSON; errors name `path` and the offending key.
    public init(json: JSON, path: String) throws(FileError) {
        func fail(_ m: String) -> FileError { FileError(path, m) }
        guard json["format"]?.string == Self.formatName else {
            throw fail("not a slim-quant allocation file (\"format\" must be \"\(Self.formatName)\")")
        }
        guard let version = json["version"]?.int, version == Self.formatVersion else {
            throw fail("unsupported allocation version \(json["version"].map { $0.serialized() } ?? "missing") (this tool reads \(Self.formatVersion))")
        }
        func int(_ key: String, in obj: JSON = json) throws(FileError) -> Int {
            guard let v = obj[key]?.int else { throw fail("\"\(key)\" must be an integer") }
            return v
        }
        func string(_ key: String, in obj: JSON = json) throws(FileError) -> String {
            guard let v = obj[key]?.string else { throw fail("\"\(key)\" must be a string") }
            return v
        }
        model = try string("model")
        method = try string("method")
        bits = try int("bits")
        groupSize = try int("group_size")
        seed = try int("seed")
        toolVersion = try string("tool_version")
        guard groupSize > 0 else { throw fail("\"group_size\" must be positive") }
        if let c = json["calibration"], !c.isNull {
            calibration = Calibration(file: try string("file", in: c), sha256: try string("sha256", in: c),
                                      samples: try int("samples", in: c), sequenceLength: try int("sequence_length", in: c))
        } else {
            calibration = nil
        }
        shapes = try Self.intArrays(json["shapes"], name: "shapes", path: path)
        guard shapes.values.allSatisfy({ $0.count == 2 && $0.allSatisfy { $0 > 0 } }) else {
            throw fail("\"shapes\" must map each module to [out, in] with positive sizes")
        }
        guard let layerArray = json["layers"]?.array else { throw fail("\"layers\" must be an array") }
        var parsed: [[String: [Int]]] = []
        for (l, layer) in layerArray.enumerated() {
            parsed.append(try Self.intArrays(layer, name: "layers[\(l)]", path: path))
        }
        layers = parsed
    }

    /// An object of integer arrays, e.g. one layer's bits or the shapes table.
    static func intArrays(_ value: JSON?, name: String, path: String) throws(FileError) -> [String: [Int]] {
        guard let obj = value?.object else { throw FileError(path, "\"\(name)\" must be an object") }
        var out: [String: [Int]] = [:]
        for (key, v) in obj.pairs {
            guard let arr = v.array else { throw FileError(path, "\(name).\(key) must be an array of integers") }
            var ints: [Int] = []
            for x in arr {
                guard let i = x.int else { throw FileError(path, "\(name).\(key) must be an array of integers") }
                ints.append(i)
            }
            out[key] = ints
        }
        return out
    }

    public static func load(path: String) throws -> AllocationFile {
        let file = try MappedFile(path: path)
        let json: JSON
        do { json = try file.withBytes { bytes throws(JSONError) in try JSON.parse(bytes) } } catch {
            throw FileError(path, error.description)
        }
        return try AllocationFile(json: json, path: path)
    }

    /// Writes the allocation atomically (temp file + rename).
    public func write(to path: String) throws {
        try AtomicFile.write(text: toJSON().serialized(pretty: true) + "\n", to: path)
    }
}
