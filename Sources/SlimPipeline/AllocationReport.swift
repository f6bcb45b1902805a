import Foundation
import SlimModel

// Human-readable views of a AllocationFile: a per-layer text summary and an SVG heatmap
// (layers × modules × groups, colour = bits).

extension AllocationFile {
    /// One line per layer: for each module the bit histogram as "b1×n1 b2×n2", then the layer's
    /// average bits per weight; a total line at the end.
    public func summary() -> [String] {
        var lines: [String] = []
        lines.append("allocation: \(model), method \(method), target \(bits) bits, group \(groupSize), seed \(seed)"
                     + (calibration.map { ", calibration \($0.samples)×\($0.sequenceLength) (\(String($0.sha256.prefix(12))))" } ?? ""))
        for (l, layer) in layers.enumerated() {
            var parts: [String] = []
            for key in Self.orderedKeys(layer) {
                let counts = Dictionary(grouping: layer[key]!, by: { $0 }).mapValues(\.count)
                let hist = counts.keys.sorted().map { "\($0)b×\(counts[$0]!)" }.joined(separator: " ")
                parts.append("\(key.split(separator: ".").last!)[\(hist)]")
            }
            let single = AllocationFile(model: model, method: method, bits: bits, groupSize: groupSize, seed: seed,
                                       calibration: nil, toolVersion: toolVersion, shapes: shapes, layers: [layer])
            lines.append(String(format: "layer %3d  %.3f bpw  ", l, single.averageBits) + parts.joined(separator: " "))
        }
        let h = histogram
        let hist = h.keys.sorted().map { "\($0)-bit: \(h[$0]!)" }.joined(separator: ", ")
        lines.append(String(format: "total      %.4f bits per weight (codes only); groups %@", averageBits, hist))
        return lines
    }

    /// An SVG heatmap: one row per layer, one block of cells per module (its groups in column
    /// order), colour by bit width, with a legend. Self-contained, no scripts.
    public func svg() -> String {
        let cell = 10, rowHeight = 14, gap = 12, left = 56, top = 48
        let kinds = LinearKind.allCases
        // Column offsets of each module block (groups from the shapes, so empty layers still draw).
        var offsets: [Int] = []
        var x = left
        let groupsPerKind: [Int] = kinds.map { kind in
            shapes[Self.key(kind)].map { ($0[1] + groupSize - 1) / groupSize } ?? 0
        }
        for g in groupsPerKind {
            offsets.append(x)
            x += g * cell + gap
        }
        let width = x + 20
        let height = top + layers.count * rowHeight + 60
        var s = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(width)" height="\(height)" font-family="sans-serif" font-size="10">
        <title>\(escape(model)) — \(escape(method)) \(bits)-bit allocation, group \(groupSize)</title>
        <text x="\(left)" y="14" font-size="12">\(escape(model)): \(escape(method)), target \(bits) bits, group \(groupSize)</text>

        """
        for (k, kind) in kinds.enumerated() where groupsPerKind[k] > 0 {
            s += "<text x=\"\(offsets[k])\" y=\"\(top - 6)\">\(kind.rawValue)</text>\n"
        }
        for (l, layer) in layers.enumerated() {
            let y = top + l * rowHeight
            s += "<text x=\"\(left - 6)\" y=\"\(y + rowHeight - 4)\" text-anchor=\"end\">\(l)</text>\n"
            for (k, kind) in kinds.enumerated() {
                guard let bitsRow = layer[Self.key(kind)] else { continue }
                for (g, b) in bitsRow.enumerated() {
                    s += "<rect x=\"\(offsets[k] + g * cell)\" y=\"\(y)\" width=\"\(cell - 1)\" height=\"\(rowHeight - 1)\" fill=\"\(Self.colour(b))\"><title>layer \(l) \(kind.rawValue) group \(g): \(b) bits</title></rect>\n"
                }
            }
        }
        let legendY = top + layers.count * rowHeight + 20
        var lx = left
        for b in histogram.keys.sorted() {
            s += "<rect x=\"\(lx)\" y=\"\(legendY)\" width=\"12\" height=\"12\" fill=\"\(Self.colour(b))\"/><text x=\"\(lx + 16)\" y=\"\(legendY + 10)\">\(b) bit\(b == 1 ? "" : "s")</text>\n"
            lx += 64
        }
        s += String(format: "<text x=\"%d\" y=\"%d\">%.3f bits per weight</text>\n", lx + 8, legendY + 10, averageBits)
        s += "</svg>\n"
        return s
    }

    /// Colour per bit width: low bits warm, high bits cool (colour-blind friendly ordering).
    static func colour(_ bits: Int) -> String {
        switch bits {
        case 1: return "#d7301f"
        case 2: return "#fc8d59"
        case 3: return "#91bfdb"
        case 4: return "#4575b4"
        default: return "#7f7f7f"
        }
    }

    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }
}
