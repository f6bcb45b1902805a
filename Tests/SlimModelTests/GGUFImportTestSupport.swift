import Foundation
import XCTest
import SlimIO
import SlimTestSupport

// Small-file builders and readers for the GGUF import tests. Fixture paths come from
// `TestFixtures`.

/// Whole-file reads that fail the test with the path.
enum ReadFile {
    static func json(_ path: String) throws -> JSON {
        try JSON.parse(try bytes(path))
    }

    static func bytes(_ path: String) throws -> [UInt8] {
        Array(try XCTUnwrap(FileManager.default.contents(atPath: path), "cannot read \(path)"))
    }
}

/// A minimal valid llama GGUF (hidden 64, 2 heads, 1 KV head, 1 layer, ffn 32, vocab 4,
/// SentencePiece tokenizer) for tests that change one thing; `edit` runs before serializing.
/// Tensors named in `omit` are left out (for tests that add their own version).
func makeTinyLlamaGGUF(in dir: TemporaryDirectory, name: String = "tiny.gguf", omit: Set<String> = [],
                       edit: (inout GGUFWriter) throws -> Void = { _ in }) throws -> String {
    var w = GGUFWriter()
    w.set("general.architecture", .string("llama"))
    w.set("llama.embedding_length", .uint32(64))
    w.set("llama.feed_forward_length", .uint32(32))
    w.set("llama.block_count", .uint32(1))
    w.set("llama.attention.head_count", .uint32(2))
    w.set("llama.attention.head_count_kv", .uint32(1))
    w.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-6))
    w.set("tokenizer.ggml.model", .string("llama"))
    w.set("tokenizer.ggml.tokens", .array(["<unk>", "<s>", "</s>", "\u{2581}a"].map { .string($0) }))
    w.set("tokenizer.ggml.scores", .array([0, 0, 0, -1].map { .float32($0) }))
    w.set("tokenizer.ggml.token_type", .array([2, 3, 3, 1].map { .int32($0) }))
    let tensors: [(String, [Int])] = [
        ("token_embd.weight", [64, 4]), ("output_norm.weight", [64]), ("blk.0.attn_norm.weight", [64]),
        ("blk.0.ffn_norm.weight", [64]), ("blk.0.attn_q.weight", [64, 64]), ("blk.0.attn_k.weight", [64, 32]),
        ("blk.0.attn_v.weight", [64, 32]), ("blk.0.attn_output.weight", [64, 64]),
        ("blk.0.ffn_gate.weight", [64, 32]), ("blk.0.ffn_up.weight", [64, 32]), ("blk.0.ffn_down.weight", [32, 64]),
    ]
    for (name, dims) in tensors where !omit.contains(name) {
        try w.addTensor(name: name, dims: dims, floats: (0..<dims.reduce(1, *)).map { Float($0) })
    }
    try edit(&w)
    let path = dir.path + "/" + name
    try w.write(to: path)
    return path
}

/// The error message of `body`, failing the test when it does not throw.
func importError(_ body: () throws -> Void, file: StaticString = #filePath, line: UInt = #line) -> String {
    do {
        try body()
        XCTFail("expected an error", file: file, line: line)
        return ""
    } catch {
        return "\(error)"
    }
}
