import Foundation
import SlimTestSupport
import XCTest
import SlimIO
@testable import SlimModel

/// GGUF → Hugging Face import: tensors, config.json and written files against the reference
/// converter's output (../shared/scripts/gguf_to_hf.py).
final class GGUFImportTests: XCTestCase {
    let tmp = TemporaryDirectory()

    // MARK: - stories260K (F32 GGUF, GQA)

    func testStoriesTensorsAreBitIdenticalToSharedCheckpoint() throws {
        let model = try GGUFImport(path: TestFixtures.stories260KGGUF())
        let reference = try SafetensorsFile(path: TestFixtures.stories260KDir() + "/model.safetensors")
        XCTAssertEqual(model.tensorNames.count, 48)
        XCTAssertEqual(Set(model.tensorNames), Set(reference.tensorNames))
        for name in reference.tensorNames {
            let want = try XCTUnwrap(reference.tensor(name))
            let got = try XCTUnwrap(model.tensor(name), name)
            XCTAssertEqual(got.dtype, .f32)
            XCTAssertEqual(got.shape, want.shape, name)
            XCTAssertEqual(model.shape(name), want.shape)
            XCTAssertTrue(got.bytes.elementsEqual(want.bytes), "\(name) differs")
        }
        XCTAssertEqual(model.storedType("model.layers.0.self_attn.q_proj.weight"), .f32)
        XCTAssertNil(model.tensor("model.layers.9.self_attn.q_proj.weight"))
    }

    func testStoriesConfigEqualsSharedConfig() throws {
        let model = try GGUFImport(path: TestFixtures.stories260KGGUF())
        XCTAssertEqual(model.config, try ReadFile.json(TestFixtures.stories260KDir() + "/config.json"))
        let parsed = try LlamaConfig(json: model.config, path: "stories")
        XCTAssertEqual(parsed.numKeyValueHeads, 4)
        XCTAssertFalse(parsed.tieWordEmbeddings)
    }

    func testStoriesWriteIsByteIdenticalToReferenceConverter() throws {
        let model = try GGUFImport(path: TestFixtures.stories260KGGUF())
        let out = tmp.path + "/stories"
        try model.write(directory: out, dtype: .f32)
        XCTAssertEqual(try ReadFile.bytes(out + "/model.safetensors"),
                       try ReadFile.bytes(TestFixtures.stories260KDir() + "/model.safetensors"))
        XCTAssertEqual(try ReadFile.bytes(out + "/config.json"),
                       try ReadFile.bytes(TestFixtures.stories260KDir() + "/config.json"))
        XCTAssertEqual(try ReadFile.json(out + "/tokenizer.json"), model.tokenizerJSON)
        XCTAssertEqual(try ReadFile.json(out + "/tokenizer_config.json"), model.tokenizerConfig)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [], "temporary files left behind")
    }

    // MARK: - Mixed-type fixture (Q8_0, Q4_0, Q4_1, F16, BF16, F32; tied; alignment 64)

    func testTinyFixtureWritesMatchReferenceConverterInEveryDtype() throws {
        let model = try GGUFImport(path: TestFixtures.committed("SlimIOTests", "gguf/tiny-llama.gguf"))
        XCTAssertEqual(model.gguf.alignment, 64)
        let types = Set(model.tensorNames.compactMap { model.storedType($0) })
        XCTAssertEqual(types, [.q8_0, .q4_0, .q4_1, .f16, .bf16, .f32])
        XCTAssertNil(model.tensor("lm_head.weight"))
        XCTAssertEqual(model.config["tie_word_embeddings"], .bool(true))
        for (dtype, suffix, torch) in [(DType.f32, "f32", "float32"), (.f16, "f16", "float16"), (.bf16, "bf16", "bfloat16")] {
            let out = tmp.path + "/tiny-" + suffix
            try model.write(directory: out, dtype: dtype)
            XCTAssertEqual(try ReadFile.bytes(out + "/model.safetensors"),
                           try ReadFile.bytes(TestFixtures.committed("SlimIOTests", "gguf/tiny-llama.\(suffix).safetensors")), suffix)
            let config = try ReadFile.json(out + "/config.json")
            XCTAssertEqual(config["torch_dtype"], .string(torch))
            if dtype == .f32 {
                XCTAssertEqual(try ReadFile.bytes(out + "/config.json"),
                               try ReadFile.bytes(TestFixtures.committed("SlimIOTests", "gguf/tiny-llama.config.json")))
            }
        }
        // In-memory views agree with the written F32 file.
        let written = try SafetensorsFile(path: tmp.path + "/tiny-f32/model.safetensors")
        for name in model.tensorNames {
            XCTAssertTrue(try XCTUnwrap(model.tensor(name)).bytes.elementsEqual(try XCTUnwrap(written.tensor(name)).bytes), name)
            XCTAssertEqual(try model.floats(name).count, model.shape(name)?.reduce(1, *))
        }
    }

    // MARK: - SmolLM2 (Q4_1 + Q8_0, GQA 9/3, tied)

    func testSmolLM2ImportMatchesPreparedDirectory() throws {
        let ggufPath = try TestFixtures.smollm2GGUF()
        let dir = try TestFixtures.smollm2Dir()
        let start = Date()
        let model = try GGUFImport(path: ggufPath)
        let opened = Date()
        let reference = try SafetensorsFile(path: dir + "/model.safetensors")
        XCTAssertEqual(Set(model.tensorNames), Set(reference.tensorNames))
        var params = 0
        for name in reference.tensorNames {
            let want = try XCTUnwrap(reference.tensor(name))
            XCTAssertEqual(model.shape(name), want.shape, name)
            let got = try model.floats(name)  // decoded afresh, not cached
            params += got.count
            XCTAssertEqual(got.count * 4, want.bytes.count, name)
            let same = got.withUnsafeBytes { memcmp($0.baseAddress!, want.bytes.baseAddress!, want.bytes.count) == 0 }
            XCTAssertTrue(same, "\(name) differs from the prepared checkpoint")
        }
        XCTAssertEqual(params, 134_515_008)
        XCTAssertEqual(model.config, try ReadFile.json(dir + "/config.json"))
        print(String(format: "GGUFImport SmolLM2: open %.2f s, decode+compare %d params %.2f s",
                     opened.timeIntervalSince(start), params, Date().timeIntervalSince(opened)))
    }

    // MARK: - Un-permutation

    func testUnpermuteRowsSwapsPairAxis() {
        // 2 heads of 4 rows (2 rotary pairs), 3 columns; row r holds r*10 + column.
        let rows = 8, cols = 3
        let src = (0..<rows * cols).map { Float($0 / cols * 10 + $0 % cols) }
        var dst = [Float](repeating: -1, count: src.count)
        src.withUnsafeBufferPointer { s in
            dst.withUnsafeMutableBufferPointer { d in GGUFImport.unpermuteRows(from: s, into: d, rows: rows, heads: 2) }
        }
        let rowOrder = stride(from: 0, to: dst.count, by: cols).map { Int(dst[$0]) / 10 }
        XCTAssertEqual(rowOrder, [0, 2, 1, 3, 4, 6, 5, 7])
        XCTAssertEqual(Array(dst[3..<6]), [20, 21, 22])
    }

    func testQAndKUsePerHeadCountsAndOtherTensorsStayUnpermuted() throws {
        let path = try makeTinyLlamaGGUF(in: tmp)
        let model = try GGUFImport(path: path)
        func rowStarts(_ name: String) throws -> [Int] {
            let v = try model.floats(name)
            let cols = try XCTUnwrap(model.shape(name)).last!
            return stride(from: 0, to: v.count, by: cols).map { Int(v[$0]) / cols }
        }
        // q: 64 rows, 2 heads of 32 → within each head rows 0,2,4,…,30,1,3,…,31.
        let perHead = (0..<16).map { $0 * 2 } + (0..<16).map { $0 * 2 + 1 }
        XCTAssertEqual(try rowStarts("model.layers.0.self_attn.q_proj.weight"), perHead + perHead.map { $0 + 32 })
        // k: 32 rows, 1 KV head.
        XCTAssertEqual(try rowStarts("model.layers.0.self_attn.k_proj.weight"), perHead)
        XCTAssertEqual(try rowStarts("model.layers.0.self_attn.v_proj.weight"), Array(0..<32))
        // The zero-copy path and the cache hand out stable views.
        let q1 = try XCTUnwrap(model.tensor("model.layers.0.self_attn.q_proj.weight"))
        let q2 = try XCTUnwrap(model.tensor("model.layers.0.self_attn.q_proj.weight"))
        XCTAssertEqual(q1.bytes.baseAddress, q2.bytes.baseAddress)
        let v = try XCTUnwrap(model.tensor("model.layers.0.self_attn.v_proj.weight"))
        XCTAssertEqual(v.bytes.baseAddress, model.gguf.tensor("blk.0.attn_v.weight")?.bytes.baseAddress, "F32 served from the map")
    }

    // MARK: - Refusals

    func testRefusesOtherArchitectures() throws {
        let path = try makeTinyLlamaGGUF(in: tmp) { $0.set("general.architecture", .string("qwen2")) }
        let message = importError { _ = try GGUFImport(path: path) }
        XCTAssertTrue(message.contains("unsupported architecture \"qwen2\""), message)
        XCTAssertTrue(message.hasPrefix(path), message)
    }

    func testMissingOrMistypedHyperParameters() throws {
        var path = try makeTinyLlamaGGUF(in: tmp, name: "a.gguf") { w in
            w = GGUFWriter.copy(w, without: "llama.block_count")
        }
        XCTAssertTrue(importError { _ = try GGUFImport(path: path) }.contains("missing metadata key \"llama.block_count\""))
        path = try makeTinyLlamaGGUF(in: tmp, name: "b.gguf") { $0.set("llama.attention.head_count", .string("2")) }
        XCTAssertTrue(importError { _ = try GGUFImport(path: path) }.contains("\"llama.attention.head_count\" must be an integer"))
        path = try makeTinyLlamaGGUF(in: tmp, name: "c.gguf") { $0.set("llama.attention.head_count_kv", .uint32(0)) }
        XCTAssertTrue(importError { _ = try GGUFImport(path: path) }.contains("must be positive"))
    }

    func testRefusesUnknownTensorNamesAndTypes() throws {
        var path = try makeTinyLlamaGGUF(in: tmp, name: "a.gguf") { w in
            try w.addTensor(name: "rope_freqs.weight", dims: [4], floats: [1, 1, 1, 1])
        }
        XCTAssertTrue(importError { _ = try GGUFImport(path: path) }.contains("rope_freqs.weight"))
        path = try makeTinyLlamaGGUF(in: tmp, name: "b.gguf") { w in
            try w.addTensor(name: "blk.0.attn_q.bias", dims: [64], floats: [Float](repeating: 0, count: 64))
        }
        XCTAssertTrue(importError { _ = try GGUFImport(path: path) }.contains("unexpected tensor \"blk.0.attn_q.bias\""))
        path = try makeTinyLlamaGGUF(in: tmp, name: "c.gguf", omit: ["blk.0.ffn_up.weight"]) { w in
            try w.addTensor(name: "blk.0.ffn_up.weight", dims: [256, 8], type: .q4_K, data: [UInt8](repeating: 0, count: 144 * 8))
        }
        let message = importError { _ = try GGUFImport(path: path) }
        XCTAssertTrue(message.contains("\"blk.0.ffn_up.weight\" has type Q4_K"), message)
    }

    func testRefusesQRowsThatDoNotSplitIntoHeads() throws {
        let path = try makeTinyLlamaGGUF(in: tmp) { $0.set("llama.attention.head_count", .uint32(3)) }
        let message = importError { _ = try GGUFImport(path: path) }
        XCTAssertTrue(message.contains("attn_q.weight") && message.contains("3 heads"), message)
    }

    func testWriteRefusesOtherDtypesAndUnwritableDirectories() throws {
        let model = try GGUFImport(path: try makeTinyLlamaGGUF(in: tmp))
        XCTAssertTrue(importError { try model.write(directory: tmp.path + "/x", dtype: .i8) }.contains("F32, F16 or BF16"))
        let blocker = tmp.path + "/file"
        XCTAssertTrue(FileManager.default.createFile(atPath: blocker, contents: Data([1])))
        XCTAssertTrue(importError { try model.write(directory: blocker, dtype: .f32) }.contains(blocker))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: blocker)), Data([1]))
    }
}

extension GGUFWriter {
    /// A copy of `w` without metadata `key` (the writer itself only adds or replaces).
    static func copy(_ w: GGUFWriter, without key: String) -> GGUFWriter {
        var out = GGUFWriter(version: w.version)
        for (k, v) in w.metadata where k != key { out.set(k, v) }
        for t in w.tensors { try? out.addTensor(name: t.name, dims: t.dims, type: t.type, data: t.data) }
        return out
    }
}
