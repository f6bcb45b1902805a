import Foundation
import SlimTestSupport
import XCTest
@testable import SlimIO

/// Parsing of well-formed files and one test per corruption class.
final class GGUFParserTests: XCTestCase {
    let tmp = TemporaryDirectory()

    /// A valid file: 2 metadata pairs, one F32 tensor [2, 3] at offset 0.
    func validFile(alignment: Int = 32) -> [UInt8] { validFileWithTableEnd(alignment: alignment).bytes }

    /// The valid file and the offset where its tensor table ends (before the padding).
    func validFileWithTableEnd(alignment: Int = 32) -> (bytes: [UInt8], tableEnd: Int) {
        var r = RawGGUF()
        r.header(tensors: 1, kv: 2)
        r.kvString("general.architecture", "test")
        r.kvU32("general.alignment", UInt32(alignment))
        r.tensorInfo("w", dims: [3, 2], type: 0, offset: 0)
        let tableEnd = r.bytes.count
        r.pad(to: alignment)
        r.raw(f32Bytes([1, 2, 3, 4, 5, 6]))
        return (r.bytes, tableEnd)
    }

    // MARK: - Well-formed files

    func testParsesMetadataInOrderWithAllValueTypes() throws {
        var w = GGUFWriter(version: 2)
        let values: [(String, GGUFValue)] = [
            ("u8", .uint8(200)), ("i8", .int8(-5)), ("u16", .uint16(60000)), ("i16", .int16(-300)),
            ("u32", .uint32(4_000_000_000)), ("i32", .int32(-7)), ("u64", .uint64(UInt64.max)),
            ("i64", .int64(Int64.min)), ("f32", .float32(1e-5)), ("f64", .float64(-2.5)),
            ("b", .bool(true)), ("s", .string("héllo ▁ 世界")), ("empty", .string("")),
            ("arr", .array([.string("a"), .string("")])),
            ("nested", .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])])),
        ]
        for (k, v) in values { w.set(k, v) }
        try w.addTensor(name: "x", dims: [4], floats: [1, 2, 3, 4])
        let f = try GGUFFile(path: tmp.file(try w.serialized()))
        XCTAssertEqual(f.version, 2)
        XCTAssertEqual(f.metadata.map(\.key), values.map(\.0))
        for (k, v) in values { XCTAssertEqual(f.value(k), v, k) }
        XCTAssertEqual(f.value("f32")?.double, Double(Float(1e-5)))
        XCTAssertEqual(f.value("u64")?.int, nil, "u64 above Int.max is not an Int")
        XCTAssertNil(f.value("missing"))
        XCTAssertEqual(f.alignment, 32)
        XCTAssertEqual(f.tensorNames, ["x"])
        XCTAssertEqual(try f.dequantize("x"), [1, 2, 3, 4])
    }

    func testTensorViewsAreZeroCopyRowMajor() throws {
        let f = try GGUFFile(path: tmp.file(validFile(alignment: 64)))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.alignment, 64)
        XCTAssertEqual(f.dataOffset % 64, 0)
        let info = try XCTUnwrap(f.info("w"))
        XCTAssertEqual(info.dims, [3, 2])
        XCTAssertEqual(info.shape, [2, 3])
        XCTAssertEqual(info.byteCount, 24)
        let view = try XCTUnwrap(f.tensor("w"))
        XCTAssertEqual(view.dtype, .f32)
        XCTAssertEqual(view.shape, [2, 3])
        XCTAssertEqual(Array(view.bytes), f32Bytes([1, 2, 3, 4, 5, 6]))
        XCTAssertNil(f.tensor("nope"))
    }

    func testStoriesGGUFParses() throws {
        let f = try GGUFFile(path: try TestFixtures.shared("models/stories260K-gguf/stories260K-f32.gguf"))
        XCTAssertEqual(f.version, 3)
        XCTAssertEqual(f.metadata.count, 19)
        XCTAssertEqual(f.metadata.first?.key, "tokenizer.ggml.tokens")
        XCTAssertEqual(f.value("general.architecture"), .string("llama"))
        XCTAssertEqual(f.value("llama.attention.head_count_kv"), .uint32(4))
        XCTAssertEqual(f.value("tokenizer.ggml.tokens")?.array?.count, 512)
        XCTAssertEqual(f.value("tokenizer.ggml.tokens")?.array?[3], .string("<0x00>"))
        XCTAssertEqual(f.value("tokenizer.ggml.padding_token_id"), .uint32(0xFFFF_FFFF))
        XCTAssertEqual(f.tensorInfos.count, 48)
        XCTAssertTrue(f.tensorInfos.allSatisfy { $0.type == .f32 })
        // The embedding is stored unpermuted: its bytes equal the HF checkpoint's.
        let emb = try XCTUnwrap(f.tensor("token_embd.weight"))
        XCTAssertEqual(emb.shape, [512, 64])
        let st = try SafetensorsFile(path: try TestFixtures.shared("models/stories260K/model.safetensors"))
        let ref = try XCTUnwrap(st.tensor("model.embed_tokens.weight"))
        XCTAssertEqual(ref.shape, emb.shape)
        XCTAssertTrue(Array(ref.bytes) == Array(emb.bytes))
    }

    // MARK: - Header corruption

    func testBadMagic() {
        var bytes = validFile()
        bytes[3] = UInt8(ascii: "X")
        XCTAssertGGUFError(bytes, .badMagic, in: tmp)
        XCTAssertGGUFError([], .badMagic, in: tmp)
        XCTAssertGGUFError(Array("GGU".utf8), .badMagic, in: tmp)
    }

    func testUnsupportedVersions() {
        for v: UInt32 in [0, 1, 4, 0x0300_0000] {
            var r = RawGGUF()
            r.header(version: v, tensors: 0, kv: 0)
            XCTAssertGGUFError(r.bytes, .unsupportedVersion(v), in: tmp)
        }
        XCTAssertTrue(GGUFError("p", .unsupportedVersion(1)).message.contains("version 1 is not supported"))
        XCTAssertTrue(GGUFError("p", .unsupportedVersion(0x0300_0000)).message.contains("big-endian"))
    }

    func testHostileCountsFailBeforeAllocating() {
        var r = RawGGUF()
        r.header(tensors: 1 << 60, kv: 0)
        XCTAssertGGUFError(r.bytes, .countTooLarge(what: "tensor", count: 1 << 60), in: tmp)

        r = RawGGUF()
        r.header(tensors: 0, kv: UInt64.max)
        XCTAssertGGUFError(r.bytes, .countTooLarge(what: "metadata", count: UInt64.max), in: tmp)

        r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.string("arr")
        r.u32(9)
        r.u32(8)  // array of strings
        r.u64(1 << 60)
        r.zeros(64)
        XCTAssertGGUFError(r.bytes, .countTooLarge(what: "array \"arr\" element", count: 1 << 60), in: tmp)
    }

    func testTruncationAtEveryByteIsAnErrorNotACrash() throws {
        let (bytes, tableEnd) = validFileWithTableEnd()
        XCTAssertNoThrow(try GGUFFile(path: tmp.file(bytes)))
        for n in 0..<bytes.count {
            let path = tmp.file(Array(bytes[0..<n]), name: "cut.gguf")
            XCTAssertThrowsError(try GGUFFile(path: path), "prefix of \(n) bytes") { error in
                guard let e = error as? GGUFError else { return XCTFail("not a GGUFError: \(error)") }
                if n >= 4 && n < tableEnd {
                    // Inside the header and tables only truncation or an impossible count can be reported.
                    switch e.kind {
                    case .truncated, .countTooLarge: break
                    default: XCTFail("prefix \(n): \(e)")
                    }
                }
            }
        }
        var r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.string("key")
        r.u32(4)
        r.raw([1, 2])  // half a uint32
        XCTAssertGGUFError(r.bytes, .truncated(what: "value of \"key\"", offset: 39), in: tmp)
    }

    func testRandomCorruptionNeverCrashes() throws {
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        w.set("tokens", .array((0..<20).map { .string("tok\($0)") }))
        w.set("scores", .array((0..<20).map { .float32(Float($0)) }))
        try w.addTensor(name: "a", dims: [32, 2], type: .q4_1, data: [UInt8](repeating: 0x11, count: 40))
        try w.addTensor(name: "b", dims: [8], floats: [Float](repeating: 1, count: 8))
        let good = try w.serialized()
        var rng = SplitMix64(seed: 42)
        for _ in 0..<300 {
            var bytes = good
            for _ in 0..<Int(rng.next() % 4 + 1) {
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            let path = tmp.file(bytes, name: "fuzz.gguf")
            do {
                let f = try GGUFFile(path: path)
                for name in f.tensorNames { _ = try? f.dequantize(name) }
            } catch {
                XCTAssertEqual(error.path, path)
            }
        }
    }

    // MARK: - Metadata corruption

    func testInvalidUTF8() {
        var r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.stringBytes([0x6B, 0xFF, 0x6B])
        r.u32(4)
        r.u32(0)
        XCTAssertGGUFError(r.bytes, .invalidUTF8(what: "metadata key", offset: 24), in: tmp)

        r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.string("k")
        r.u32(8)
        r.stringBytes([0xE2, 0x96])  // truncated 3-byte sequence
        XCTAssertGGUFError(r.bytes, .invalidUTF8(what: "value of \"k\"", offset: 37), in: tmp)
    }

    func testStringLengthPastEndOfFile() {
        var r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.u64(1 << 62)
        r.raw(Array("key".utf8))
        r.zeros(16)  // enough bytes that the metadata count itself is plausible
        XCTAssertGGUFError(r.bytes, .truncated(what: "metadata key", offset: 24), in: tmp)
    }

    func testUnknownValueTypes() {
        var r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.string("k")
        r.u32(13)
        r.u32(0)
        XCTAssertGGUFError(r.bytes, .unknownValueType(key: "k", typeID: 13), in: tmp)

        r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.string("k")
        r.u32(9)
        r.u32(99)
        r.u64(0)
        XCTAssertGGUFError(r.bytes, .unknownValueType(key: "k", typeID: 99), in: tmp)
    }

    func testInvalidBool() {
        var r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.string("flag")
        r.u32(7)
        r.u8(2)
        XCTAssertGGUFError(r.bytes, .invalidBool(key: "flag"), in: tmp)
    }

    func testArraysOfArraysAreBoundedInDepth() throws {
        func nested(_ depth: Int) -> [UInt8] {
            var r = RawGGUF()
            r.header(tensors: 0, kv: 1)
            r.string("deep")
            r.u32(9)
            for _ in 1..<depth {
                r.u32(9)  // element type: array
                r.u64(1)
            }
            r.u32(4)  // innermost: one uint32
            r.u64(1)
            r.u32(7)
            return r.bytes
        }
        let ok = try GGUFFile(path: tmp.file(nested(GGUFFile.maxArrayDepth)))
        var v = try XCTUnwrap(ok.value("deep"))
        for _ in 1..<GGUFFile.maxArrayDepth { v = try XCTUnwrap(v.array?.first) }
        XCTAssertEqual(v, .array([.uint32(7)]))
        XCTAssertGGUFError(nested(GGUFFile.maxArrayDepth + 1), .nestingTooDeep(key: "deep"), in: tmp)
    }

    func testDuplicateKey() {
        var r = RawGGUF()
        r.header(tensors: 0, kv: 2)
        r.kvU32("a", 1)
        r.kvU32("a", 2)
        XCTAssertGGUFError(r.bytes, .duplicateKey("a"), in: tmp)
    }

    func testBadAlignment() {
        for a: UInt32 in [0, 3, 48] {
            var r = RawGGUF()
            r.header(tensors: 0, kv: 1)
            r.kvU32("general.alignment", a)
            let path = tmp.file(r.bytes)
            XCTAssertThrowsError(try GGUFFile(path: path)) { e in
                guard case .badAlignment = (e as? GGUFError)?.kind else { return XCTFail("\(e)") }
            }
        }
        var r = RawGGUF()
        r.header(tensors: 0, kv: 1)
        r.kvString("general.alignment", "32")
        XCTAssertGGUFError(r.bytes, .badAlignment("expected an integer, found string"), in: tmp)
    }

    // MARK: - Tensor table corruption

    func testDuplicateTensor() {
        var r = RawGGUF()
        r.header(tensors: 2, kv: 0)
        r.tensorInfo("w", dims: [8], type: 0, offset: 0)
        r.tensorInfo("w", dims: [8], type: 0, offset: 32)
        r.pad()
        r.zeros(64)
        XCTAssertGGUFError(r.bytes, .duplicateTensor("w"), in: tmp)
    }

    func testTooManyDimensions() {
        var r = RawGGUF()
        r.header(tensors: 1, kv: 0)
        r.tensorInfo("w", dims: [1, 1, 1, 1, 1], type: 0, offset: 0)
        r.pad()
        r.zeros(32)
        XCTAssertGGUFError(r.bytes, .tooManyDimensions(tensor: "w", count: 5), in: tmp)
    }

    func testBadDimensions() {
        for dims: [UInt64] in [[1 << 63], [1 << 32, 1 << 32], [32, 1 << 62]] {
            var r = RawGGUF()
            r.header(tensors: 1, kv: 0)
            r.tensorInfo("w", dims: dims, type: 2, offset: 0)
            r.pad()
            XCTAssertGGUFError(r.bytes, .badDimensions(tensor: "w", dims: dims), in: tmp)
        }
    }

    func testPartialQuantBlock() {
        for (type, ggml) in [(UInt32(2), GGMLType.q4_0), (3, .q4_1), (8, .q8_0)] {
            var r = RawGGUF()
            r.header(tensors: 1, kv: 0)
            r.tensorInfo("w", dims: [16, 4], type: type, offset: 0)
            r.pad()
            r.zeros(128)
            XCTAssertGGUFError(r.bytes, .partialBlock(tensor: "w", type: ggml, ne0: 16), in: tmp)
        }
    }

    func testMisalignedOffset() {
        var r = RawGGUF()
        r.header(tensors: 1, kv: 0)
        r.tensorInfo("w", dims: [4], type: 0, offset: 4)
        r.pad()
        r.zeros(64)
        XCTAssertGGUFError(r.bytes, .misalignedTensor(tensor: "w", offset: 4, alignment: 32), in: tmp)
    }

    func testTensorOutOfBounds() {
        var r = RawGGUF()
        r.header(tensors: 1, kv: 0)
        r.tensorInfo("w", dims: [16], type: 0, offset: 0)
        r.pad()
        r.zeros(60)  // 64 needed
        XCTAssertGGUFError(r.bytes, .tensorOutOfBounds(tensor: "w", offset: 0, byteCount: 64, dataSize: 60), in: tmp)

        r = RawGGUF()
        r.header(tensors: 1, kv: 0)
        r.tensorInfo("w", dims: [1], type: 0, offset: UInt64.max - 31)
        r.pad()
        r.zeros(32)
        XCTAssertGGUFError(r.bytes, .tensorOutOfBounds(tensor: "w", offset: UInt64.max - 31, byteCount: 4, dataSize: 32), in: tmp)
    }

    func testOverlappingTensors() {
        var r = RawGGUF()
        r.header(tensors: 2, kv: 0)
        r.tensorInfo("a", dims: [16], type: 0, offset: 0)  // bytes 0..<64
        r.tensorInfo("b", dims: [8], type: 0, offset: 32)  // bytes 32..<64
        r.pad()
        r.zeros(64)
        XCTAssertGGUFError(r.bytes, .overlappingTensors("a", "b"), in: tmp)
    }

    // MARK: - Tensor types

    func testUnknownTypeOpensButFailsOnUse() throws {
        var r = RawGGUF()
        r.header(tensors: 2, kv: 0)
        r.tensorInfo("mystery", dims: [64], type: 77, offset: 0)
        r.tensorInfo("ok", dims: [2], type: 0, offset: 64)
        r.pad()
        r.zeros(64)
        r.raw(f32Bytes([7, 8]))
        let f = try GGUFFile(path: tmp.file(r.bytes))
        XCTAssertEqual(f.info("mystery")?.type, .unknown(77))
        XCTAssertNil(f.info("mystery")?.byteCount)
        XCTAssertNil(f.tensor("mystery"))
        XCTAssertEqual(try f.dequantize("ok"), [7, 8])
        XCTAssertThrowsError(try f.dequantize("mystery")) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .unknownTensorType(tensor: "mystery", typeID: 77))
            XCTAssertTrue("\(e)".contains("\"mystery\" has unknown ggml type id 77"))
        }
        XCTAssertThrowsError(try f.rawData("mystery"))
    }

    func testKnownButUndecodableTypeIsValidated() throws {
        var r = RawGGUF()
        r.header(tensors: 1, kv: 0)
        r.tensorInfo("k", dims: [256, 2], type: 12, offset: 0)  // Q4_K: 144 bytes per 256
        r.pad()
        r.zeros(288)
        let f = try GGUFFile(path: tmp.file(r.bytes))
        XCTAssertEqual(f.info("k")?.byteCount, 288)
        XCTAssertEqual(try f.rawData("k").count, 288)
        XCTAssertNil(f.tensor("k"))
        XCTAssertThrowsError(try f.dequantize("k")) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .unsupportedTensorType(tensor: "k", type: .q4_K))
        }
        XCTAssertThrowsError(try f.dequantize("absent")) { e in
            XCTAssertEqual((e as? GGUFError)?.kind, .noSuchTensor("absent"))
        }
    }

    func testUnreadablePaths() {
        XCTAssertThrowsError(try GGUFFile(path: tmp.path + "/missing.gguf")) { e in
            guard case .unreadable = (e as? GGUFError)?.kind else { return XCTFail("\(e)") }
        }
        XCTAssertThrowsError(try GGUFFile(path: tmp.path)) { e in
            guard case .unreadable = (e as? GGUFError)?.kind else { return XCTFail("\(e)") }
        }
    }

    func testTypeTable() {
        XCTAssertEqual(GGMLType(id: 3), .q4_1)
        XCTAssertEqual(GGMLType(id: 3).id, 3)
        XCTAssertEqual(GGMLType(id: 30), .bf16)
        XCTAssertEqual(GGMLType(id: 4), .unknown(4), "removed Q4_2")
        XCTAssertEqual(GGMLType.q8_0.blockLayout?.bytes, 34)
        XCTAssertEqual(GGMLType.q4_0.blockLayout?.bytes, 18)
        XCTAssertEqual(GGMLType.q4_1.blockLayout?.bytes, 20)
        XCTAssertEqual(GGMLType.q6_K.blockLayout?.elements, 256)
        XCTAssertEqual(GGMLType.unknown(99).description, "type 99")
    }
}

/// A small deterministic generator for the corruption fuzz test.
struct SplitMix64 {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
