import Foundation
import SlimIO

// Normalizers of tokenizer.json (`normalizer`), with HF `tokenizers` semantics. They run on
// each text split left after non-normalized added tokens were cut out.

enum NormalizerStep: Sendable {
    /// Prepends a string to a non-empty split.
    case prepend([UInt8])
    /// Replaces every non-overlapping occurrence (leftmost first) of a literal.
    case replace(pattern: [UInt8], content: [UInt8])
    /// Per-character full lower-case mapping (no context: Rust `char::to_lowercase`).
    case lowercase
    case nfc, nfkc, nfd, nfkd
    /// Removes White_Space characters at either end.
    case strip(left: Bool, right: Bool)
    /// Removes combining marks (general categories Mn, Mc, Me).
    case stripAccents

    /// Parses a `normalizer` value (nil / null gives no steps).
    static func parse(_ json: JSON?, path: String) throws(FileError) -> [NormalizerStep] {
        guard let json, !json.isNull else { return [] }
        guard let type = json["type"]?.string else { throw FileError(path, "normalizer without a \"type\"") }
        switch type {
        case "Sequence":
            guard let list = json["normalizers"]?.array else {
                throw FileError(path, "Sequence normalizer without a \"normalizers\" array")
            }
            var steps: [NormalizerStep] = []
            for item in list { steps += try parse(item, path: path) }
            return steps
        case "Prepend":
            guard let s = json["prepend"]?.string else { throw FileError(path, "Prepend normalizer without \"prepend\"") }
            return [.prepend(Array(s.utf8))]
        case "Replace":
            guard case .literal(let pattern) = try parsePattern(json["pattern"], what: "Replace normalizer", path: path) else {
                throw FileError(path, "Replace normalizer with a Regex pattern is not supported (only String patterns)")
            }
            guard let content = json["content"]?.string else { throw FileError(path, "Replace normalizer without \"content\"") }
            return [.replace(pattern: pattern, content: Array(content.utf8))]
        case "Lowercase": return [.lowercase]
        case "NFC": return [.nfc]
        case "NFKC": return [.nfkc]
        case "NFD": return [.nfd]
        case "NFKD": return [.nfkd]
        case "Strip":
            return [.strip(left: json["strip_left"]?.bool ?? true, right: json["strip_right"]?.bool ?? true)]
        case "StripAccents": return [.stripAccents]
        default:
            throw FileError(path, "unsupported normalizer '\(type)'")
        }
    }

    /// Normalizes one split.
    func apply(_ input: [UInt8]) -> [UInt8] {
        switch self {
        case .prepend(let s):
            return input.isEmpty ? input : s + input
        case .replace(let pattern, let content):
            return input.withUnsafeBufferPointer { b -> [UInt8] in
                guard let p = b.baseAddress else { return input }
                let m = literalMatches(p, 0, b.count, pattern)
                if m.isEmpty { return input }
                var out = [UInt8]()
                out.reserveCapacity(input.count + m.count / 2 * max(0, content.count - pattern.count))
                var prev = 0
                var k = 0
                while k + 1 < m.count {
                    out.append(contentsOf: b[prev..<m[k]])
                    out.append(contentsOf: content)
                    prev = m[k + 1]
                    k += 2
                }
                out.append(contentsOf: b[prev...])
                return out
            }
        case .lowercase:
            var out = [UInt8]()
            out.reserveCapacity(input.count)
            for s in String(decoding: input, as: UTF8.self).unicodeScalars {
                if s.isASCII {
                    let v = UInt8(s.value)
                    out.append(v >= 0x41 && v <= 0x5A ? v + 32 : v)
                } else {
                    out.append(contentsOf: s.properties.lowercaseMapping.utf8)
                }
            }
            return out
        case .nfc: return Array(String(decoding: input, as: UTF8.self).precomposedStringWithCanonicalMapping.utf8)
        case .nfkc: return Array(String(decoding: input, as: UTF8.self).precomposedStringWithCompatibilityMapping.utf8)
        case .nfd: return Array(String(decoding: input, as: UTF8.self).decomposedStringWithCanonicalMapping.utf8)
        case .nfkd: return Array(String(decoding: input, as: UTF8.self).decomposedStringWithCompatibilityMapping.utf8)
        case .strip(let left, let right):
            var scalars = Array(String(decoding: input, as: UTF8.self).unicodeScalars)
            if right { while let last = scalars.last, last.properties.isWhitespace { scalars.removeLast() } }
            if left {
                let n = scalars.prefix { $0.properties.isWhitespace }.count
                scalars.removeFirst(n)
            }
            var out = [UInt8]()
            for s in scalars { appendUTF8(s.value, to: &out) }
            return out
        case .stripAccents:
            var out = [UInt8]()
            for s in String(decoding: input, as: UTF8.self).unicodeScalars {
                switch s.properties.generalCategory {
                case .nonspacingMark, .spacingMark, .enclosingMark: continue
                default: appendUTF8(s.value, to: &out)
                }
            }
            return out
        }
    }
}

extension Array where Element == NormalizerStep {
    /// Runs every step in order over one split.
    func normalize(_ input: [UInt8]) -> [UInt8] {
        var s = input
        for step in self { s = step.apply(s) }
        return s
    }
}
