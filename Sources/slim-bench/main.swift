// slim-bench: performance benchmarks with baselines measured in the same run.
// Not part of `swift test`; run in release: `swift run -c release slim-bench [section ...]`.
import Foundation
import SlimKernels

let usage = """
    usage: slim-bench [gemm] [prefill] [packed] [packed-kernel] [dense16] [attention] [--threads N] [--python PATH] [--model DIR] [--packed DIR ...] [--quick]

    Sections (default: all available):
      gemm     Swift SGEMM (C = A·Bᵀ) GFLOP/s next to numpy/OpenBLAS at 512/1024/2048 square
               and the pipeline shapes of SmolLM2-135M, with the ratio.
      prefill  fp32 SmolLM2-135M tokens/s: forward + scoring of a 512/2048-token window (the
               eval-ppl workload) and KV-cache decode at context 512, next to PyTorch CPU
               (transformers) with the same threads, with the ratio.
      packed   decode tokens/s of the fp32 model and of each --packed checkpoint (slim-packed,
               from quantize), with the memory-bandwidth roofline measured in the same run
               (runs only when --packed is given).
      packed-kernel  the packed GEMV per call at SmolLM2 and LLaMA-7B shapes (2 and 3 bits) next to
               the fp32 GEMV on the same shape.
      dense16  the dense GEMV on F16 / BF16 weights as stored (`--weights native`) next to the
               same matrix widened to fp32, at SmolLM2 and LLaMA-7B shapes.
      attention  decode attention per layer (one query row) with an fp32, fp16 and bf16 KV cache at
               512 and 2048 positions, with the read bandwidth measured in the same run.
    Options:
      --threads N    threads for both sides (default: all cores)
      --python PATH  interpreter with numpy / torch + transformers (default: $SLIM_BENCH_PYTHON, else python3)
      --model DIR    model for prefill (default: $SLIM_SMOLLM2_DIR, else ~/.cache/slim-quant-fixtures/smollm2-135m-f32)
      --packed DIR   a slim-packed checkpoint for the packed section (repeatable)
      --quick        fewer shapes and shorter timing
    """

var sections: [String] = []
var threads = Kernels.defaultThreads
var python = ProcessInfo.processInfo.environment["SLIM_BENCH_PYTHON"] ?? "python3"
var quick = false
var modelPath: String?
var packedPaths: [String] = []
var args = Array(CommandLine.arguments.dropFirst())
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--threads":
        guard let v = args.first.flatMap(Int.init), v > 0 else { FileHandle.standardError.write(Data("slim-bench: --threads needs a positive integer\n".utf8)); exit(64) }
        threads = v; args.removeFirst()
    case "--python":
        guard let v = args.first else { FileHandle.standardError.write(Data("slim-bench: --python needs a path\n".utf8)); exit(64) }
        python = v; args.removeFirst()
    case "--model":
        guard let v = args.first else { FileHandle.standardError.write(Data("slim-bench: --model needs a path\n".utf8)); exit(64) }
        modelPath = v; args.removeFirst()
    case "--packed":
        guard let v = args.first else { FileHandle.standardError.write(Data("slim-bench: --packed needs a path\n".utf8)); exit(64) }
        packedPaths.append(v); args.removeFirst()
    case "--quick": quick = true
    case "-h", "--help": print(usage); exit(0)
    case "gemm", "prefill", "packed", "packed-kernel", "dense16", "attention": sections.append(a)
    default:
        FileHandle.standardError.write(Data("slim-bench: unknown argument '\(a)'\n\(usage)\n".utf8)); exit(64)
    }
}
if sections.isEmpty { sections = packedPaths.isEmpty ? ["gemm", "prefill"] : ["gemm", "prefill", "packed"] }

#if DEBUG
print("warning: slim-bench was built in debug mode; run `swift run -c release slim-bench` for real numbers\n")
#endif

let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

if sections.contains("gemm") {
    GemmSection(threads: threads, python: python, scriptDir: packageRoot + "/scripts/bench", quick: quick).run()
}
if sections.contains("prefill") {
    ModelSection(modelPath: modelPath, threads: threads, python: python, scriptDir: packageRoot + "/scripts/bench", quick: quick).run()
}
if sections.contains("packed") {
    let fp = ModelSection(modelPath: modelPath, threads: threads, python: python, scriptDir: "", quick: quick).resolvedModelPath
    if packedPaths.isEmpty { print("note: the packed section needs --packed DIR (a quantize output)\n") }
    else { PackedSection(fpModelPath: fp, packedPaths: packedPaths, threads: threads, quick: quick).run() }
}
if sections.contains("packed-kernel") { PackedKernelSection(threads: threads, quick: quick).run() }
if sections.contains("dense16") { Dense16Section(threads: threads, quick: quick).run() }
if sections.contains("attention") { AttentionSection(threads: threads, quick: quick).run() }
