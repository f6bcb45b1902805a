// Parsing and validation of a safetensors header.
//
// Layout: 8-byte little-endian header length N, then N bytes of UTF-8 JSON (an object, padded
// with spaces), then the data section. The rules follow the format specification and the Rust
// reference (`huggingface/safetensors`, `tensor.rs`: `read_metadata` + `Metadata::validate`),
// and are stricter where the specification is and the reference is lax:
//  - the header must start with `{` and may only be padded with spaces (0x20) after the object
//    (the reference lets serde_json skip any JSON whitespace on either side);
//  - duplicate keys are rejected (the reference keeps the last one);
//  - unknown keys inside a tensor entry are rejected (the reference ignores them);
//  - `__metadata__` must be an object of strings (the reference also accepts `null`).
// Everything the reference rejects is rejected here too, with a specific error case.

// MARK: - Parsed header

/// One validated tensor entry. Offsets are relative to the start of the data section.
struct SafetensorsEntry: Sendable {
    let name: String
    let dtype: DType
    let shape: [Int]
    let begin: Int
    let end: Int
}

/// A fully validated header: after `parse` succeeds, every entry's bytes lie inside the data
/// section and the entries tile it exactly.
struct SafetensorsHeader: Sendable {
    /// `__metadata__` pairs in file order; nil when the key is absent.
    let metadata: [(key: String, value: String)]?
    /// Entries in data-offset order (ties between zero-size tensors keep file order).
    let entries: [SafetensorsEntry]
    /// File offset of the data section: 8 + header length.
    let dataStart: Int

    /// Validates the complete file image `file` (header and data section).
    static func parse(_ file: UnsafeRawBufferPointer) throws(SafetensorsError) -> SafetensorsHeader {
        // MARK: Framing
        guard file.count >= 8 else { throw .fileTooSmall(size: file.count) }
        let length = UInt64(littleEndian: file.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard length <= UInt64(SafetensorsLimits.maxHeaderBytes) else { throw .headerTooLarge(length: length) }
        let headerLength = Int(length)  // <= 1e8, fits
        guard headerLength <= file.count - 8 else {
            throw .headerOutOfBounds(length: length, fileSize: file.count)
        }
        let dataStart = 8 + headerLength
        let header = UnsafeRawBufferPointer(rebasing: file[8..<dataStart])

        if let bad = firstInvalidUTF8Offset(header) { throw .headerNotUTF8(offset: bad) }
        guard let first = header.first, first == UInt8(ascii: "{") else {
            throw .headerNotObject(firstByte: header.first)
        }

        // MARK: JSON
        // Cut the space padding off, then parse the rest as one JSON document. A document that
        // parses but still ends in other whitespace had non-space padding.
        var jsonEnd = header.count
        while jsonEnd > 0, header[jsonEnd - 1] == 0x20 { jsonEnd -= 1 }
        let json: JSON
        do {
            json = try JSON.parse(UnsafeRawBufferPointer(rebasing: header[0..<jsonEnd]))
        } catch {
            throw .invalidJSON(error.description)
        }
        let last = header[jsonEnd - 1]
        guard last == UInt8(ascii: "}") else { throw .invalidHeaderPadding(byte: last) }
        guard case .object(let root) = json else { throw .headerNotObject(firstByte: first) }

        // MARK: Entries
        var metadata: [(key: String, value: String)]? = nil
        var entries: [SafetensorsEntry] = []
        entries.reserveCapacity(root.count)
        for (key, value) in root.pairs {
            if key == "__metadata__" {
                metadata = try parseMetadata(value)
            } else {
                entries.append(try parseEntry(name: key, value))
            }
        }

        // MARK: Layout
        // Stable sort by (begin, end): zero-size tensors may share an offset.
        let order = entries.indices.sorted { a, b in
            let x = entries[a], y = entries[b]
            if x.begin != y.begin { return x.begin < y.begin }
            if x.end != y.end { return x.end < y.end }
            return a < b
        }
        let sorted = order.map { entries[$0] }
        let dataSize = file.count - dataStart
        var expected = 0
        for e in sorted {
            guard e.begin == expected else {
                throw .overlappingOrGap(tensor: e.name, expectedBegin: expected, begin: e.begin)
            }
            guard e.end <= dataSize else { throw .missingBytes(tensor: e.name, end: e.end, dataSize: dataSize) }
            expected = e.end
        }
        guard expected == dataSize else { throw .trailingBytes(dataEnd: expected, dataSize: dataSize) }
        return SafetensorsHeader(metadata: metadata, entries: sorted, dataStart: dataStart)
    }

    // MARK: - Pieces

    private static func parseMetadata(_ value: JSON) throws(SafetensorsError) -> [(key: String, value: String)] {
        guard case .object(let object) = value else {
            throw .invalidMetadata("expected an object of strings, found \(typeName(value))")
        }
        var pairs: [(key: String, value: String)] = []
        pairs.reserveCapacity(object.count)
        for (k, v) in object.pairs {
            guard case .string(let s) = v else {
                throw .invalidMetadata("value of \"\(k)\" is \(typeName(v)), expected a string")
            }
            pairs.append((k, s))
        }
        return pairs
    }

    private static func parseEntry(name: String, _ value: JSON) throws(SafetensorsError) -> SafetensorsEntry {
        guard case .object(let object) = value else {
            throw .invalidTensorEntry(tensor: name, reason: "expected an object, found \(typeName(value))")
        }
        for key in object.keys where key != "dtype" && key != "shape" && key != "data_offsets" {
            throw .invalidTensorEntry(tensor: name, reason: "unknown key \"\(key)\"")
        }
        guard let dtypeValue = object["dtype"] else { throw .invalidTensorEntry(tensor: name, reason: "missing \"dtype\"") }
        guard let shapeValue = object["shape"] else { throw .invalidTensorEntry(tensor: name, reason: "missing \"shape\"") }
        guard let offsetsValue = object["data_offsets"] else {
            throw .invalidTensorEntry(tensor: name, reason: "missing \"data_offsets\"")
        }

        guard case .string(let dtypeName) = dtypeValue else {
            throw .invalidTensorEntry(tensor: name, reason: "dtype is \(typeName(dtypeValue)), expected a string")
        }
        guard let dtype = DType(rawValue: dtypeName) else { throw .unknownDType(tensor: name, dtype: dtypeName) }

        guard case .array(let dims) = shapeValue else {
            throw .invalidShape(tensor: name, reason: "expected an array, found \(typeName(shapeValue))")
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for d in dims {
            // Only integer literals: the reference (serde `usize`) rejects `2.0` as well.
            guard case .int(let v) = d, v >= 0 else {
                throw .invalidShape(tensor: name, reason: "dimension \(d.serialized()) is not a non-negative integer")
            }
            shape.append(Int(v))
        }

        guard case .array(let offsets) = offsetsValue, offsets.count == 2 else {
            throw .invalidOffsets(tensor: name, reason: "expected [begin, end], found \(offsetsValue.serialized())")
        }
        guard case .int(let b) = offsets[0], case .int(let e) = offsets[1], b >= 0, e >= 0 else {
            throw .invalidOffsets(tensor: name, reason: "\(offsetsValue.serialized()) are not non-negative integers")
        }
        guard b <= e else { throw .invalidOffsets(tensor: name, reason: "begin \(b) is after end \(e)") }

        var bytes = dtype.byteSize
        for d in shape {
            let (p, overflow) = bytes.multipliedReportingOverflow(by: d)
            guard !overflow else { throw .sizeOverflow(tensor: name) }
            bytes = p
        }
        let span = Int(e - b)
        guard span == bytes else { throw .sizeMismatch(tensor: name, expected: bytes, actual: span) }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, begin: Int(b), end: Int(e))
    }

    private static func typeName(_ v: JSON) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "a boolean"
        case .int, .double: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// Offset of the first byte that breaks UTF-8 validity, or nil if `bytes` is valid.
    static func firstInvalidUTF8Offset(_ bytes: UnsafeRawBufferPointer) -> Int? {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var offset = 0
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded): offset += encoded.count
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}
