// swift-tools-version:6.0
// slim-quant: SliM-LLM mixed-precision quantization for LLaMA-family models.
// No package dependencies by design: toolchain libraries plus system zlib only.
import PackageDescription

// Hot loops are written with Swift SIMD types; let LLVM use AVX2 + FMA on x86_64 hosts
// (any x86_64 CPU since 2013). Package.swift is compiled for the host, so this follows it.
#if arch(x86_64)
let cpuFlags = ["-target-cpu", "haswell"]
#else
let cpuFlags: [String] = []
#endif
// Numeric modules are optimized even in debug builds: unoptimized SIMD code is ~300× slower,
// which would make `swift test` (debug) unable to run a real forward pass.
let simdFlags: [SwiftSetting] = [
    .unsafeFlags(cpuFlags),
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]

let package = Package(
    name: "slim-quant",
    products: [
        .executable(name: "slim-quant", targets: ["slim-quant"]),
        .library(name: "SlimFrontend", targets: ["SlimFrontend"]),
    ],
    targets: [
        // System zlib (every Linux has it) for .json.gz datasets.
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // I/O: JSON, mmap, atomic writes, safetensors, GGUF, gzip.
        .target(name: "SlimIO", dependencies: ["CZlib"]),
        // Tokenizers: byte-level BPE and SentencePiece-style BPE.
        .target(name: "SlimTokenizer", dependencies: ["SlimIO"]),
        // Kernels: SGEMM / GEMV / XᵀX, conversions; each fast path has a scalar reference.
        .target(name: "SlimKernels", swiftSettings: simdFlags),
        // Model: config.json, tensor naming/validation, weight loading, GGUF import.
        .target(name: "SlimModel", dependencies: ["SlimIO", "SlimTokenizer", "SlimPacking"]),
        // Runtime: fp32 LLaMA forward (prefill, KV-cache decode, layer-by-layer with input capture).
        .target(name: "SlimRuntime", dependencies: ["SlimIO", "SlimModel", "SlimKernels", "SlimPacking"], swiftSettings: simdFlags),
        // Quantization algorithms: RTN, GPTQ, SliM-LLM (salience, SBA, SQC), calibration RNG.
        .target(name: "SlimQuant", dependencies: ["SlimKernels"], swiftSettings: simdFlags),
        // Int8-activation decode GEMV over the packed CPU layout: scalar reference + AVX2 path
        // (runtime dispatch), in C for vpmaddubsw/vpmaddwd, which Swift SIMD cannot express.
        .target(name: "CSlimQ8", cSettings: [.unsafeFlags(["-O2"], .when(configuration: .debug))],
                linkerSettings: [.linkedLibrary("m")]),
        // Packing: the slim-packed mixed-precision format, its scalar reference and CPU kernels.
        .target(name: "SlimPacking", dependencies: ["SlimIO", "SlimKernels", "CSlimQ8"], swiftSettings: simdFlags),
        // Quantization pipeline: calibration, layer-by-layer driver, allocation files, outputs.
        .target(name: "SlimPipeline", dependencies: ["SlimIO", "SlimModel", "SlimQuant", "SlimRuntime", "SlimData", "SlimPacking"]),
        // Datasets: WikiText-2, PTB, C4, plain text; calibration manifests.
        .target(name: "SlimData", dependencies: ["SlimIO", "SlimTokenizer"]),
        // Evaluation: perplexity protocols (paper / llama.cpp), scoring of logits.
        .target(name: "SlimEval", dependencies: [], swiftSettings: simdFlags),
        // CUDA backend, C side: the API of libslimcuda.so (loaded with dlopen at run time) and the
        // host repack into its GPU layout. The .cu kernels are built only by scripts/build-cuda.sh.
        .target(name: "CSlimCUDA", exclude: ["cuda", "emulator"], linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        // CUDA backend, Swift side: library loading, device buffers, packed/dense linears, the
        // resident GPU model (`--device cuda`), synthetic models for speed runs.
        .target(name: "SlimCUDA", dependencies: ["CSlimCUDA", "SlimIO", "SlimKernels", "SlimModel", "SlimPacking", "SlimRuntime"]),
        // CLI engine: argument parsing and subcommands (thin executable on top).
        .target(name: "SlimFrontend", dependencies: ["SlimIO", "SlimTokenizer", "SlimModel", "SlimData", "SlimKernels", "SlimRuntime", "SlimEval", "SlimPipeline", "SlimCUDA"]),
        .executableTarget(name: "slim-quant", dependencies: ["SlimFrontend"]),
        // Benchmarks with same-run baselines (numpy/OpenBLAS, PyTorch); not part of `swift test`.
        .executableTarget(name: "slim-bench", dependencies: ["SlimKernels", "SlimRuntime", "SlimModel", "SlimEval", "SlimPacking"], swiftSettings: simdFlags),
        // GPU correctness and speed checks (scripts/gpu-check.sh); prints SKIP without a GPU.
        .executableTarget(name: "slim-gpu-check", dependencies: ["SlimCUDA", "SlimPacking", "SlimRuntime", "SlimModel", "SlimKernels", "SlimIO"]),

        // Fixture lookup shared by the test targets (../shared, prepared SmolLM2, temp dirs).
        // Test targets exclude their committed Fixtures/ directories: tests read them by path.
        .target(name: "SlimTestSupport", path: "Tests/SlimTestSupport"),
        .testTarget(name: "SlimIOTests", dependencies: ["SlimIO", "SlimTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "SlimTokenizerTests", dependencies: ["SlimTokenizer", "SlimIO", "SlimData", "SlimTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "SlimModelTests", dependencies: ["SlimModel", "SlimIO", "SlimTokenizer", "SlimTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "SlimDataTests", dependencies: ["SlimData", "SlimIO", "SlimTokenizer", "SlimTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "SlimKernelsTests", dependencies: ["SlimKernels", "SlimTestSupport"], swiftSettings: simdFlags),
        .testTarget(name: "SlimRuntimeTests", dependencies: ["SlimRuntime", "SlimModel", "SlimIO", "SlimTokenizer", "SlimTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "SlimQuantTests", dependencies: ["SlimQuant", "SlimKernels", "SlimTestSupport"], exclude: ["Fixtures"], swiftSettings: simdFlags),
        .testTarget(name: "SlimPipelineTests", dependencies: ["SlimPipeline", "SlimModel", "SlimIO", "SlimRuntime", "SlimQuant", "SlimData", "SlimTokenizer", "SlimPacking", "SlimTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "SlimPackingTests", dependencies: ["SlimPacking", "SlimIO", "SlimKernels", "SlimTestSupport"], swiftSettings: simdFlags),
        .testTarget(name: "SlimEvalTests", dependencies: ["SlimEval"]),
        .testTarget(name: "SlimCUDATests", dependencies: ["SlimCUDA", "CSlimCUDA", "SlimPacking", "SlimIO", "SlimKernels", "SlimRuntime", "SlimTestSupport"]),
        .testTarget(name: "SlimFrontendTests", dependencies: ["SlimFrontend", "SlimIO", "SlimTestSupport"], exclude: ["Fixtures"]),
    ],
    // Swift 5 mode: the numeric kernels share raw buffers across Dispatch workers by design
    // (disjoint slices), which Swift 6's strict Sendable checking cannot express.
    swiftLanguageModes: [.v5]
)
