// libFuzzer harness: the slim-packed checkpoint loader. The input is a safetensors image read
// as the weights of a fixed tiny packed model (config below); it goes through the same path as
// `slim-quant eval-ppl` on a packed checkpoint: `SafetensorsFile(file:)`, the layout check
// (`TensorLayout.packedProblem` for every linear), `PackedLinear(source:prefix:...)`, the
// repack to the kernel layout (`PackedMatrix`) and a forward pass through the packed kernels.
// With SLIM_FUZZ_SEED_DIR set, LLVMFuzzerInitialize first writes valid checkpoints of this
// model there (made by the production encoder) as seeds. Built and run by scripts/fuzz.sh.
import Foundation
import SlimIO
import SlimModel
import SlimPacking
import SlimRuntime

let configText = """
    {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "intermediate_size": 24,
     "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 32,
     "max_position_embeddings": 64, "tie_word_embeddings": true,
     "quantization_config": {"quant_method": "slim-quant", "format": "slim-packed", "format_version": 1, "group_size": 8}}
    """
let config = try! LlamaConfig(json: try! JSON.parse(string: configText), path: "fuzz/config.json")

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size), path: "fuzz/model.safetensors")
    guard let source = try? SafetensorsFile(file: file) else { return 0 }
    guard let weights = try? LlamaWeights(config: config, source: source, path: file.path) else { return 0 }
    let model = LlamaModel(weights: weights, threads: 1)
    blackHole(try? model.forward([1, 5, 31]))
    return 0
}

// MARK: - Seeds

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    guard let dir = ProcessInfo.processInfo.environment["SLIM_FUZZ_SEED_DIR"] else { return 0 }
    // Bit maps: uniform 2-bit, SliM-like 1/2/3, and every width up to 8.
    let patterns: [[UInt8]] = [[2], [1, 2, 3], [1, 2, 3, 4, 5, 6, 7, 8]]
    for (i, pattern) in patterns.enumerated() {
        try! writeSeed(to: "\(dir)/seed-packed-\(i).safetensors", pattern: pattern, seed: UInt64(i + 1))
    }
    return 0
}

/// A valid packed checkpoint of `config` whose groups cycle through `pattern` bit widths.
func writeSeed(to path: String, pattern: [UInt8], seed: UInt64) throws {
    var rng = seed
    func next() -> UInt64 { rng = rng &* 6364136223846793005 &+ 1442695040888963407; return rng >> 33 }
    let layout = TensorLayout(config: config, packedGroupSize: 8)
    var tensors: [StreamedTensor] = []
    func floats(_ name: String, _ shape: [Int]) {
        let n = shape.reduce(1, *)
        let values = (0..<n).map { _ in Float(Int(next() % 64) - 32) / 32 }
        tensors.append(StreamedTensor(name: name, dtype: .f32, shape: shape) { emit in
            try values.withUnsafeBytes { try emit($0) }
        })
    }
    floats(TensorLayout.embedTokens, [config.vocabSize, config.hiddenSize])
    floats(TensorLayout.inputNorm(layer: 0), [config.hiddenSize])
    floats(TensorLayout.postAttentionNorm(layer: 0), [config.hiddenSize])
    floats(TensorLayout.finalNorm, [config.hiddenSize])
    for m in layout.linearModules(layer: 0) {
        let rows = m.outFeatures, columns = m.inFeatures, k = (columns + 7) / 8
        let bits = (0..<k).map { pattern[$0 % pattern.count] }
        var scales: [Float] = [], zeros: [Float] = [], codes = [UInt8](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for g in 0..<k {
                let b = Int(bits[g])
                scales.append(Float(1 + next() % 8) / 16)
                zeros.append(b == 1 ? Float(Int(next() % 8) - 4) / 8 : Float(next() % UInt64(1 << b)))
                for c in (g * 8)..<min(columns, (g + 1) * 8) {
                    codes[r * columns + c] = b == 1 ? (next() % 2 == 0 ? 1 : 3) : UInt8(next() % UInt64(1 << b))
                }
            }
        }
        let packed = try PackedLinear(rows: rows, columns: columns, groupSize: 8, bits: bits, scales: scales,
                                      zeros: zeros, codes: codes)
        tensors += packed.streamedTensors(prefix: PackedFormat.prefix(ofWeight: m.weightName))
    }
    try SafetensorsStream.write(to: path, tensors: tensors, metadata: [("format", "pt")])
}
