// libFuzzer harness: config.json (SlimIO's JSON parser, `LlamaConfig(json:path:)` as
// `LlamaConfig(path:)` runs it after reading the file, including quantization_config), then the
// tensor layout the config implies, checked against an empty checkpoint as every command does
// before loading weights. Built and run by scripts/fuzz.sh.
import SlimIO
import SlimModel

/// A checkpoint with no tensors: every expected tensor is reported missing.
final class EmptySource: TensorSource, @unchecked Sendable {
    var tensorNames: [String] { [] }
    func tensor(_ name: String) -> TensorView? { nil }
    func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])? { nil }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let json = try? JSON.parse(UnsafeRawBufferPointer(start: data, count: size)) else { return 0 }
    guard let config = try? LlamaConfig(json: json, path: "fuzz/config.json") else { return 0 }
    blackHole(config.toJSON().serialized())
    let layout = TensorLayout(config: config, packedGroupSize: config.packing?.groupSize)
    blackHole(layout.parameterCount)
    do {
        try layout.validate(EmptySource(), path: "fuzz/model.safetensors")
        fatalError("an empty checkpoint passed validation")
    } catch {
        blackHole(error.description)
    }
    return 0
}
