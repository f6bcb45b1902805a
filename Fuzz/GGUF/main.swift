// libFuzzer harness: the GGUF reader (`GGUFFile(file:)`, the code behind `GGUFFile(path:)`)
// and the llama import on top of it (config, tensor names, tokenizer vocabulary), on arbitrary
// bytes. Accepted tensors of a plain or dequantizable type are decoded, so a bad extent is an
// AddressSanitizer report. Built and run by scripts/fuzz.sh.
import SlimIO
import SlimModel

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.gguf")
    guard let gguf = try? GGUFFile(file: file) else { return 0 }
    var sum: Float = 0
    for info in gguf.tensorInfos where info.elementCount <= 1 << 20 {
        if let values = try? gguf.dequantize(info.name) { sum += values.reduce(0, +) }
        if let raw = try? gguf.rawData(info.name) { sum += Float(raw.reduce(0) { $0 &+ $1 }) }
    }
    for (key, _) in gguf.metadata { precondition(gguf.value(key) != nil) }
    blackHole(sum)
    // The import: hyperparameters, names, the tokenizer built from the vocabulary.
    guard let imported = try? GGUFImport(gguf: gguf) else { return 0 }
    if let config = try? LlamaConfig(json: imported.config, path: "fuzz.gguf") {
        let layout = TensorLayout(config: config)
        if layout.problems(in: imported).isEmpty {
            for name in imported.tensorNames.prefix(4) { blackHole(imported.tensor(name)) }
        }
    }
    if let tokenizer = try? imported.tokenizer() {
        let ids = tokenizer.encode("Once upon a time, 12 cats\n ünïcödé 😀 <s>")
        blackHole(tokenizer.decode(ids))
    }
    return 0
}
