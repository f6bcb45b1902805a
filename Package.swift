// swift-tools-version:6.0
// slim-quant: SliM-LLM mixed-precision quantization for LLaMA-family models.
// No package dependencies by design: toolchain libraries plus system zlib only.
import PackageDescription

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
        // Model: config.json, tensor naming/validation, weight loading, GGUF import.
        .target(name: "SlimModel", dependencies: ["SlimIO", "SlimTokenizer"]),
        // Datasets: WikiText-2, PTB, C4, plain text; calibration manifests.
        .target(name: "SlimData", dependencies: ["SlimIO", "SlimTokenizer"]),
        // CLI engine: argument parsing and subcommands (thin executable on top).
        .target(name: "SlimFrontend", dependencies: ["SlimIO", "SlimTokenizer", "SlimModel", "SlimData"]),
        .executableTarget(name: "slim-quant", dependencies: ["SlimFrontend"]),

        .testTarget(name: "SlimIOTests", dependencies: ["SlimIO"]),
        .testTarget(name: "SlimTokenizerTests", dependencies: ["SlimTokenizer", "SlimIO"]),
        .testTarget(name: "SlimModelTests", dependencies: ["SlimModel", "SlimIO", "SlimTokenizer"]),
        .testTarget(name: "SlimDataTests", dependencies: ["SlimData", "SlimIO", "SlimTokenizer"]),
        .testTarget(name: "SlimFrontendTests", dependencies: ["SlimFrontend"]),
    ]
)
