import SlimIO
import SlimModel
import SlimPacking

/// Storage accounting of a slim-packed checkpoint for `inspect`: bits per weight of every
/// projection kind (summed over layers) split into codes, scales, zero points, 1-bit means and
/// bit maps, the total over all quantized linears, and GPTQ's uniform layout for comparison.
struct PackedSizeReport {
    struct Entry {
        let name: String
        var weights = 0
        var codes = 0, scales = 0, zeros = 0, means = 0, maps = 0
        var gptqBytes = 0
        var bytes: Int { codes + scales + zeros + means + maps }
        func bitsPerWeight(_ part: Int) -> Double { weights == 0 ? 0 : 8 * Double(part) / Double(weights) }
    }

    let groupSize: Int
    let targetBits: Int
    var kinds: [Entry]
    var total: Entry

    /// - Throws: `FileError` for a linear whose bit map cannot be read (the loader has
    ///   validated the checkpoint already, so this does not happen for a `LoadedModel`).
    init(model: LoadedModel) throws {
        guard let packing = model.config.packing else { throw FileError(model.path, "not a slim-packed checkpoint") }
        groupSize = packing.groupSize
        var byKind: [LinearKind: Entry] = [:]
        var bitsSeen: [Int: Int] = [:]
        for m in model.layout.linearModules {
            let prefix = PackedFormat.prefix(ofWeight: m.weightName)
            guard let view = model.weights.tensor(prefix + PackedFormat.Suffix.bits) else {
                throw FileError(model.path, "missing \(prefix)\(PackedFormat.Suffix.bits)")
            }
            let bits = view.withBytes { Array($0.bindMemory(to: UInt8.self)) }
            let geometry: PackedGeometry
            do {
                geometry = try PackedGeometry(rows: m.outFeatures, columns: m.inFeatures, groupSize: groupSize, bits: bits)
            } catch {
                throw FileError(model.path, "\(prefix): \(error.message)")
            }
            for b in bits { bitsSeen[Int(b), default: 0] += 1 }
            let parts = geometry.storageBreakdown
            var e = byKind[m.kind] ?? Entry(name: "\(m.kind.block).\(m.kind.rawValue)")
            e.weights += m.outFeatures * m.inFeatures
            e.codes += parts.codes
            e.scales += parts.scales
            e.zeros += parts.zeros
            e.means += parts.means
            e.maps += parts.bitMap
            byKind[m.kind] = e
        }
        // N: the config's, else the group-weighted mean rounded.
        targetBits = packing.bits ?? (bitsSeen.max { $0.value < $1.value }?.key ?? 4)
        var total = Entry(name: "all linears")
        var kinds: [Entry] = []
        for kind in LinearKind.allCases {
            guard var e = byKind[kind] else { continue }
            for m in model.layout.linearModules where m.kind == kind {
                e.gptqBytes += PackedGeometry.uniformGPTQBytes(rows: m.outFeatures, columns: m.inFeatures,
                                                               groupSize: groupSize, bits: targetBits)
            }
            total.weights += e.weights
            total.codes += e.codes
            total.scales += e.scales
            total.zeros += e.zeros
            total.means += e.means
            total.maps += e.maps
            total.gptqBytes += e.gptqBytes
            kinds.append(e)
        }
        self.kinds = kinds
        self.total = total
    }

    /// Text table lines.
    func lines(fileBytes: Int, parameterCount: Int) -> [String] {
        var out = ["packed linears (group \(groupSize), bits per weight):",
                   "module            weights     codes  scales   zeros   means    map   total  GPTQ-\(targetBits)b"]
        func row(_ e: Entry) -> String {
            func f(_ x: Double) -> String { String(format: "%7.4f", x) }
            return e.name.padding(toLength: 16, withPad: " ", startingAt: 0)
                + String(format: "%9d ", e.weights)
                + [e.codes, e.scales, e.zeros, e.means, e.maps].map { " " + f(e.bitsPerWeight($0)) }.joined()
                + " " + f(e.bitsPerWeight(e.bytes)) + "  " + f(e.bitsPerWeight(e.gptqBytes))
        }
        out += kinds.map(row)
        out.append(row(total))
        let fp16 = 2 * parameterCount
        out.append(String(format: "file %@ = %.1f%% of fp16 (%@); quantized linears %@ vs GPTQ %d-bit %@",
                          formatBytes(fileBytes), 100 * Double(fileBytes) / Double(max(fp16, 1)), formatBytes(fp16),
                          formatBytes(total.bytes), targetBits, formatBytes(total.gptqBytes)))
        return out
    }

    /// The same numbers for `--json`.
    func json(fileBytes: Int, parameterCount: Int) -> JSON {
        func entry(_ e: Entry) -> JSON {
            .object(["module": .string(e.name), "weights": .int(Int64(e.weights)), "bytes": .int(Int64(e.bytes)),
                     "bits_per_weight": .double(e.bitsPerWeight(e.bytes)),
                     "codes": .double(e.bitsPerWeight(e.codes)), "scales": .double(e.bitsPerWeight(e.scales)),
                     "zeros": .double(e.bitsPerWeight(e.zeros)), "means": .double(e.bitsPerWeight(e.means)),
                     "bit_map": .double(e.bitsPerWeight(e.maps)),
                     "gptq_uniform_bits_per_weight": .double(e.bitsPerWeight(e.gptqBytes))])
        }
        return .object(["group_size": .int(Int64(groupSize)), "target_bits": .int(Int64(targetBits)),
                        "modules": .array(kinds.map(entry)), "total": entry(total),
                        "fp16_bytes": .int(Int64(2 * parameterCount)), "file_bytes": .int(Int64(fileBytes))])
    }
}
