// slim-gpu-check: correctness and speed of the CUDA backend on a real GPU (run by
// scripts/gpu-check.sh). Every kernel against a CPU/float64 reference on random inputs, whole
// models against SlimRuntime, then GEMV bandwidth vs the copy bandwidth.
//
//   slim-gpu-check [--cuda-lib FILE] [--model DIR]... [--quick] [--no-speed] [--require-gpu]
//   slim-gpu-check --sweep [--cuda-lib FILE] [--quick]   (decode GEMV time per SLIM_CUDA_DEPTH × WARPS)
//
// Exit status: 0 all checks passed, or no GPU/backend (one SKIP line; 1 with --require-gpu);
// 1 a check failed; 64 bad arguments.

import Foundation
import SlimCUDA

let usage = "usage: slim-gpu-check [--cuda-lib FILE] [--model DIR]... [--quick] [--no-speed] [--require-gpu]\n"
    + "       slim-gpu-check --sweep [--cuda-lib FILE] [--quick]"

var libraryPath: String?
var models: [String] = []
var quick = false, speed = true, requireGPU = false, sweep = false
var arguments = CommandLine.arguments.dropFirst()
while let arg = arguments.popFirst() {
    switch arg {
    case "--cuda-lib", "--model":
        guard let value = arguments.popFirst() else {
            FileHandle.standardError.write(Data("error: \(arg) needs a value\n\(usage)\n".utf8))
            exit(64)
        }
        if arg == "--model" { models.append(value) } else { libraryPath = value }
    case "--quick": quick = true
    case "--no-speed": speed = false
    case "--require-gpu": requireGPU = true
    case "--sweep": sweep = true
    case "--help", "-h":
        print(usage)
        exit(0)
    default:
        FileHandle.standardError.write(Data("error: unknown argument '\(arg)'\n\(usage)\n".utf8))
        exit(64)
    }
}

let context: CUDAContext
do {
    context = try CUDAContext(libraryPath: libraryPath)
} catch {
    print("SKIP GPU checks: \(error)")
    exit(requireGPU ? 1 : 0)
}
print("device: \(context.device.summary)")
print("backend: \(context.library.path)")
fflush(stdout)

let report = Report()
let start = Date()
if sweep {
    TuningChecks.sweep(libraryPath: libraryPath, report: report, quick: quick)
    exit(report.failures == 0 ? 0 : 1)
}
LinearChecks(context: context, report: report, quick: quick).run()
OpChecks(context: context, report: report).run()
TuningChecks.run(libraryPath: libraryPath, report: report)
for model in models { ModelChecks(context: context, report: report).run(path: model) }
if speed { SpeedChecks(context: context, report: report).run() }
print(String(format: "slim-gpu-check: %d passed, %d failed (%.1f s)", report.passes, report.failures,
             Date().timeIntervalSince(start)))
exit(report.failures == 0 ? 0 : 1)
