import SlimIO
import SlimPacking

/// What config.json's `quantization_config` says about a slim-packed checkpoint.
public struct PackedCheckpointConfig: Equatable, Sendable {
    /// Input columns per group.
    public let groupSize: Int
    /// Target bits N (informational; each group's width is in its `.bits` tensor).
    public let bits: Int?
    /// "rtn", "gptq" or "slim" (informational).
    public let method: String?

    public init(groupSize: Int, bits: Int?, method: String?) {
        self.groupSize = groupSize
        self.bits = bits
        self.method = method
    }

    /// The `quantization_config` block we write for it.
    public static let quantMethod = "slim-quant"

    /// Reads `quantization_config`: nil when absent or when it describes slim-quant's
    /// fake-quantized (plain fp) output.
    /// - Throws: `FileError` for another tool's quantization (its tensors are not ours to
    ///   read), an unknown format or version, or a missing/invalid group size.
    static func read(_ r: ConfigReader) throws(FileError) -> PackedCheckpointConfig? {
        guard let q = r.json["quantization_config"], q != .null else { return nil }
        guard q.object != nil else { throw r.fail("quantization_config must be an object") }
        let method = q["quant_method"]?.string ?? "(none)"
        guard method == quantMethod else {
            throw r.fail("quantization_config.quant_method \"\(method)\" is not supported: slim-quant runs its own "
                + "slim-packed checkpoints and plain fp16/bf16/fp32 weights")
        }
        let format = q["format"]?.string
        guard format == PackedFormat.name else {
            if format == nil || format == "fake-quant-fp16" { return nil }
            throw r.fail("quantization_config.format \"\(format!)\" is unknown (expected \(PackedFormat.name))")
        }
        guard let version = q["format_version"]?.int, version == PackedFormat.version else {
            throw r.fail("slim-packed format_version \(q["format_version"].map { "\($0)" } ?? "missing") is not supported "
                + "(this slim-quant reads version \(PackedFormat.version))")
        }
        guard let groupSize = q["group_size"]?.int, groupSize >= 1 else {
            throw r.fail("quantization_config.group_size must be a positive integer")
        }
        return PackedCheckpointConfig(groupSize: groupSize, bits: q["bits"]?.int, method: q["method"]?.string)
    }
}
