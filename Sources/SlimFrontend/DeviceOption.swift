import SlimCUDA
import SlimIO
import SlimModel
import SlimRuntime

/// Where a command runs the model.
enum ComputeDevice: String, CaseIterable {
    /// The fp32 SlimRuntime on the CPU (default).
    case cpu
    /// The resident GPU model of libslimcuda.so (scripts/build-cuda.sh).
    case cuda
}

/// `--device` and `--cuda-lib`, shared by the commands that run a model.
struct DeviceSelection {
    static let options: [OptionSpec] = [
        .option("device", value: "<cpu|cuda>", help: "Run the model on the CPU or on an NVIDIA GPU.", default: "cpu"),
        .option("cuda-lib", value: "<file>",
                help: "CUDA backend library (default: $SLIM_CUDA_LIB, else .build/cuda/libslimcuda.so from scripts/build-cuda.sh)."),
    ]

    let device: ComputeDevice
    let cudaLibrary: String?

    /// - Throws: `UsageError` for an unknown device or `--cuda-lib` without `--device cuda`.
    init(_ args: ParsedArguments) throws(UsageError) {
        device = try args.choice("device", default: ComputeDevice.cpu)
        cudaLibrary = args.string("cuda-lib")
        if cudaLibrary != nil, device != .cuda {
            throw UsageError("'--cuda-lib' applies only with '--device cuda'")
        }
    }

    /// Loads the backend and opens GPU 0.
    /// - Throws: `CUDAError` (one line) when the library, the driver or a usable GPU is missing.
    func openContext(console: Console) throws -> CUDAContext {
        let context = try CUDAContext(libraryPath: cudaLibrary)
        console.log("cuda: \(context.device.summary), backend \(context.library.path)")
        return context
    }
}

/// `--kv-cache`, shared by the commands that run a model: the cache's element type, on either
/// device.
extension KVCacheType {
    static let option = OptionSpec.option(
        "kv-cache", value: "<f32|f16|bf16>",
        help: "Keep keys and values in fp32 (Hugging Face's values), fp16 (half the cache memory and "
            + "decode-attention bytes, as llama.cpp; scores stay fp32, perplexity within 0.1 % of f32) or "
            + "bf16 (as fp16, without fp16's overflow past 65504, but a coarser rounding).",
        default: "f32")

    /// - Throws: `UsageError` for an unknown value.
    init(_ args: ParsedArguments) throws(UsageError) {
        self = try args.choice("kv-cache", default: KVCacheType.f32)
    }
}

/// `--weights`, shared by the commands that run a model on the CPU: how F16/BF16 weights are held.
enum CPUWeights: String, CaseIterable {
    /// As stored, borrowed from the memory map (half the memory of fp32; the default).
    case native
    /// Widened to fp32 at load (for comparisons and memory/speed measurements).
    case fp32

    static let option = OptionSpec.option(
        "weights", value: "<native|fp32>",
        help: "CPU: keep F16/BF16 weights as stored, or widen them to fp32 at load (twice the memory, same results).",
        default: "native")

    /// - Throws: `UsageError` for an unknown value, or `--weights` with `--device cuda` (the GPU
    ///   model uploads weights in its own formats).
    init(_ args: ParsedArguments, device: ComputeDevice = .cpu) throws(UsageError) {
        self = try args.choice("weights", default: CPUWeights.native)
        if args.isSet("weights"), device != .cpu { throw UsageError("'--weights' applies only with '--device cpu'") }
    }

    var storage: DenseStorage { self == .native ? .native : .fp32 }
}

/// `--activations`, shared by the commands that run a model on the CPU: what packed linears
/// multiply their codes with.
extension PackedActivations {
    static let option = OptionSpec.option(
        "activations", value: "<fp32|int8>",
        help: "Packed models on the CPU: multiply the codes with fp32 activations (exact), or with "
            + "activations quantized to int8 in blocks of 32 as llama.cpp does (2.5-3x faster decode GEMV; "
            + "prefill and perplexity compute the same product).",
        default: "fp32")

    /// - Throws: `UsageError` for an unknown value, or `--activations` with `--device cuda`.
    init(_ args: ParsedArguments, device: ComputeDevice) throws(UsageError) {
        self = try args.choice("activations", default: PackedActivations.fp32)
        if args.isSet("activations"), device != .cpu { throw UsageError("'--activations' applies only with '--device cpu'") }
    }

}

/// The CPU runtime of `loaded` as `--weights`, `--activations` and `--kv-cache` ask (eval-ppl,
/// bench, generate).
/// - Throws: `FileError` for bad weights, or naming the model when int8 activations are asked of
///   one without packed linears (nothing would use them, and a silent fp32 run would be mistaken
///   for an int8 one).
func cpuModel(_ loaded: LoadedModel, weights: CPUWeights, activations: PackedActivations, kvCache: KVCacheType,
              threads: Int) throws(FileError) -> LlamaModel {
    if activations == .int8, loaded.config.packing == nil {
        throw FileError(loaded.path, "'--activations int8' applies to packed checkpoints (slim-quant quantize output); "
                        + "this model has no packed linears")
    }
    let runtime = try LlamaWeights(model: loaded, storage: weights.storage, packedActivations: activations)
    let model = LlamaModel(weights: runtime, threads: threads)
    model.kvCacheType = kvCache
    return model
}
