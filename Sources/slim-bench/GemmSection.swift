import Foundation
import SlimKernels

/// SGEMM throughput of our kernel against numpy (OpenBLAS) on the same machine, same run.
struct GemmSection {
    let threads: Int
    let python: String
    let scriptDir: String
    let quick: Bool

    /// (label, m, n, k): square sizes and the linear-layer shapes of a 2048-token window of
    /// SmolLM2-135M (hidden 576, intermediate 1536, vocab 49152).
    var shapes: [(String, Int, Int, Int)] {
        var s: [(String, Int, Int, Int)] = [("square", 512, 512, 512), ("square", 1024, 1024, 1024), ("square", 2048, 2048, 2048)]
        s += [("q/o proj", 2048, 576, 576), ("gate/up", 2048, 1536, 576), ("down", 2048, 576, 1536)]
        if !quick { s.append(("lm_head", 2048, 49152, 576)) }
        return s
    }

    func run() {
        print("== SGEMM C[m×n] = A[m×k]·B[n×k]ᵀ, fp32, \(threads) thread(s)")
        let baseline = numpyBaseline()
        print(pad("shape", 10) + pad("m×n×k", 20) + pad("slim GFLOP/s", 14) + pad("numpy GFLOP/s", 15) + "ratio")
        for (label, m, n, k) in shapes {
            let ours = KernelBenchmarks.sgemmNT(m: m, n: n, k: k, threads: threads,
                                                minimumRepetitions: 3, minimumSeconds: quick ? 0.3 : 1)
            let ref = baseline["\(m),\(n),\(k)"]
            let refText = ref.map { String(format: "%.1f", $0) } ?? "n/a"
            let ratio = ref.map { String(format: "%.2f×", ours.rate / $0) } ?? "n/a"
            print(pad(label, 10) + pad("\(m)×\(n)×\(k)", 20) + pad(String(format: "%.1f", ours.rate), 14) + pad(refText, 15) + ratio)
        }
        print()
    }

    /// GFLOP/s by "m,n,k" from scripts/bench/numpy_gemm.py; empty (with a note) if numpy is missing.
    func numpyBaseline() -> [String: Double] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python, scriptDir + "/numpy_gemm.py", String(threads)] + shapes.map { "\($0.1),\($0.2),\($0.3)" }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch {
            print("note: cannot run \(python) for the numpy baseline: \(error)")
            return [:]
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        var result: [String: Double] = [:]
        var blas = "?"
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let m = obj["m"] as? Int, let n = obj["n"] as? Int, let k = obj["k"] as? Int,
                  let g = obj["gflops"] as? Double else { continue }
            result["\(m),\(n),\(k)"] = g
            blas = obj["blas"] as? String ?? blas
        }
        if result.isEmpty { print("note: numpy baseline unavailable (\(python) exited \(p.terminationStatus))") }
        else { print("baseline: numpy with \(blas), measured in this run") }
        return result
    }
}

func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s + " " : s.padding(toLength: n, withPad: " ", startingAt: 0) }
