import SlimIO

// Reading tokenizer.json files.
//
// Why not SlimIO's `JSON.parse` directly: `JSONObject` keys are Swift `String`s, which
// compare by Unicode canonical equivalence, while tokenizer vocabularies are keyed by exact
// code points. LLaMA-2's vocabulary has both "ί" (U+03AF) and "ί" (U+1F77, which decomposes
// to U+03AF) as distinct tokens: a String-keyed object sees them as one duplicated key. This
// reader produces the same `JSON` values, except that an object whose keys collide that way
// is returned as an array of `[key, value]` pairs (key order kept), which `BPEModel` accepts
// for "vocab". Byte-identical duplicate keys are still an error. Syntax follows RFC 8259.

enum TokenizerJSONReader {
    static let maxDepth = 256

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws(FileError) -> JSON {
        var p = Parser(b: bytes.bindMemory(to: UInt8.self), path: path)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        if p.pos != p.b.count { throw p.fail("unexpected data after the top-level value") }
        return v
    }

    private struct Parser {
        let b: UnsafeBufferPointer<UInt8>
        let path: String
        var pos = 0

        init(b: UnsafeBufferPointer<UInt8>, path: String) {
            self.b = b
            self.path = path
        }

        func fail(_ message: String) -> FileError { FileError(path, "invalid JSON at byte \(pos): \(message)") }

        mutating func skipSpace() {
            while pos < b.count, b[pos] == 0x20 || b[pos] == 0x0A || b[pos] == 0x0D || b[pos] == 0x09 { pos += 1 }
        }

        mutating func expect(_ c: UInt8, _ what: String) throws(FileError) {
            skipSpace()
            guard pos < b.count, b[pos] == c else { throw fail("expected \(what)") }
            pos += 1
        }

        mutating func value(depth: Int) throws(FileError) -> JSON {
            guard depth <= TokenizerJSONReader.maxDepth else { throw fail("nesting deeper than \(TokenizerJSONReader.maxDepth)") }
            skipSpace()
            guard pos < b.count else { throw fail("unexpected end of input") }
            switch b[pos] {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["):
                pos += 1
                var items: [JSON] = []
                skipSpace()
                if pos < b.count, b[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                while true {
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    guard pos < b.count else { throw fail("unterminated array") }
                    if b[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if b[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                    throw fail("expected ',' or ']'")
                }
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try literal("true"); return .bool(true)
            case UInt8(ascii: "f"): try literal("false"); return .bool(false)
            case UInt8(ascii: "n"): try literal("null"); return .null
            default: return try number()
            }
        }

        mutating func object(depth: Int) throws(FileError) -> JSON {
            pos += 1
            var pairs: [(String, JSON)] = []
            var obj = JSONObject()
            // Exact key bytes, tracked only once two keys have compared equal as Strings.
            var exactKeys: Set<[UInt8]>? = nil
            skipSpace()
            if pos < b.count, b[pos] == UInt8(ascii: "}") { pos += 1; return .object(obj) }
            while true {
                skipSpace()
                guard pos < b.count, b[pos] == UInt8(ascii: "\"") else { throw fail("expected a string key") }
                let keyStart = pos
                let key = try string()
                try expect(UInt8(ascii: ":"), "':'")
                let v = try value(depth: depth + 1)
                if exactKeys != nil {
                    if exactKeys!.insert(Array(key.utf8)).inserted == false {
                        pos = keyStart
                        throw fail("duplicate key \(JSON.string(key).serialized())")
                    }
                } else if obj[key] != nil {
                    if let existing = obj.keys.first(where: { $0 == key }), Array(existing.utf8) == Array(key.utf8) {
                        pos = keyStart
                        throw fail("duplicate key \(JSON.string(key).serialized())")
                    }
                    var set = Set(pairs.map { Array($0.0.utf8) })
                    set.insert(Array(key.utf8))
                    exactKeys = set
                } else {
                    obj[key] = v
                }
                pairs.append((key, v))
                skipSpace()
                guard pos < b.count else { throw fail("unterminated object") }
                if b[pos] == UInt8(ascii: ",") { pos += 1; continue }
                if b[pos] == UInt8(ascii: "}") { pos += 1; break }
                throw fail("expected ',' or '}'")
            }
            if exactKeys != nil { return .array(pairs.map { .array([.string($0.0), $0.1]) }) }
            return .object(obj)
        }

        mutating func literal(_ word: String) throws(FileError) {
            for c in word.utf8 {
                guard pos < b.count, b[pos] == c else { throw fail("invalid literal") }
                pos += 1
            }
        }

        mutating func number() throws(FileError) -> JSON {
            let start = pos
            func digits(_ p: inout Int) -> Int {
                let s = p
                while p < b.count, b[p] >= 0x30, b[p] <= 0x39 { p += 1 }
                return p - s
            }
            var integer = true
            if pos < b.count, b[pos] == UInt8(ascii: "-") { pos += 1 }
            guard pos < b.count, b[pos] >= 0x30, b[pos] <= 0x39 else { throw fail("invalid value") }
            if b[pos] == 0x30 {
                pos += 1
                if pos < b.count, b[pos] >= 0x30, b[pos] <= 0x39 { throw fail("leading zero in number") }
            } else {
                _ = digits(&pos)
            }
            if pos < b.count, b[pos] == UInt8(ascii: ".") {
                integer = false
                pos += 1
                guard digits(&pos) > 0 else { throw fail("digit expected after '.'") }
            }
            if pos < b.count, b[pos] == UInt8(ascii: "e") || b[pos] == UInt8(ascii: "E") {
                integer = false
                pos += 1
                if pos < b.count, b[pos] == UInt8(ascii: "+") || b[pos] == UInt8(ascii: "-") { pos += 1 }
                guard digits(&pos) > 0 else { throw fail("digit expected in exponent") }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: b[start..<pos]), as: UTF8.self)
            if integer, let v = Int64(text) { return .int(v) }
            guard let d = Double(text) else { throw fail("invalid number") }
            return .double(d)
        }

        mutating func hex4() throws(FileError) -> UInt32 {
            guard pos + 4 <= b.count else { throw fail("truncated \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[pos]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw fail("invalid \\u escape")
                }
                v = v << 4 | d
                pos += 1
            }
            return v
        }

        mutating func string() throws(FileError) -> String {
            pos += 1
            var out = [UInt8]()
            while pos < b.count {
                let c = b[pos]
                if c == UInt8(ascii: "\"") {
                    pos += 1
                    guard isValidUTF8(out) else { throw fail("string is not valid UTF-8") }
                    return String(decoding: out, as: UTF8.self)
                }
                if c < 0x20 { throw fail("control character in string") }
                pos += 1
                if c != UInt8(ascii: "\\") { out.append(c); continue }
                guard pos < b.count else { break }
                let e = b[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        guard pos + 1 < b.count, b[pos] == UInt8(ascii: "\\"), b[pos + 1] == UInt8(ascii: "u") else {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        pos += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail("unpaired surrogate in \\u escape")
                    }
                    appendUTF8(scalar, to: &out)
                default:
                    throw fail("invalid escape")
                }
            }
            throw fail("unterminated string")
        }
    }
}
