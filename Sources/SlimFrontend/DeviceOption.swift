import SlimCUDA

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
