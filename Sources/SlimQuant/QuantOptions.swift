// Options, allocation modes and errors shared by every quantizer in SlimQuant.
//
// Section references (§) point to /work/shared/docs/SLIM_SPEC.md, which describes the official
// SliM-LLM code. SlimQuant implements the clean behaviour by default; each reference-code quirk
// that changes results is available behind one `ReferenceCompat` flag.

import SlimKernels

// MARK: - Reference-compatibility flags

/// Opt-in reproductions of quirks of the official SliM-LLM code (spec §11.2, §12).
///
/// The default (empty set) is the clean method. Enable `.all` to reproduce a fresh SBA run of
/// the reference (up to fp32-vs-fp16 arithmetic in the search, which is not modelled).
public struct ReferenceCompat: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Spec §1.6 / §3.2: the reference's salience pass mutates H in place (dead diagonal → 1,
    /// then `+0.01` absolute on the diagonal) before GPTQ adds its relative damping. With this
    /// flag, whenever SBA searched (`BitAllocation.mixed`):
    /// - the search ranking uses U from `H_dead + 0.01·I` (no relative damping) on the weight
    ///   as given (dead columns not zeroed);
    /// - GPTQ uses `H_dead + 0.01·I + percdamp·mean(diag(H_dead + 0.01·I))·I`;
    /// - dead columns are no longer detected by GPTQ (their diagonal is 1.01), so the weight is
    ///   not zeroed there.
    /// Uniform and fixed allocations are unaffected (the reference skips the salience pass).
    /// Clean behaviour: one damped H (percdamp only) for both rankings and for GPTQ.
    public static let doubleDamp = ReferenceCompat(rawValue: 1 << 0)

    /// Spec §6.4: the reference quantizer starts symmetric and only label-1/2 groups switch it
    /// off, so the N−1-bit groups that precede the first N/N+1-bit group (column order) use the
    /// symmetric zero point `(maxq+1)/2` (for N = 3: 2-bit groups with z = 2). Only applies to
    /// salience-ranked allocations (`BitAllocation.mixed`); 1-bit groups are unaffected.
    public static let symLeak = ReferenceCompat(rawValue: 1 << 1)

    /// Spec §3.3: SBA evaluates only i ∈ 1…K/2−1 (so K ≤ 3 has no candidate and uniform N bits
    /// is never tried). Clean: i ∈ 0…K/2.
    public static let searchRange = ReferenceCompat(rawValue: 1 << 2)

    /// Spec §3.3: the reference adds the bias to the full-precision output Y but not to the
    /// candidate outputs X·Ŵᵀ. Clean: the bias is added on both sides. (LLaMA has no biases.)
    public static let klBiasOnlyInReference = ReferenceCompat(rawValue: 1 << 3)

    /// Spec §4.1, §6: the reference keeps scales, zero points, α and μ in fp32 while it
    /// quantizes (its packer casts them to fp16 afterwards, so its kernel computes with other
    /// values than its fake-quantized model). Clean: every fitted scale, α and μ is rounded to
    /// fp16 before it is used, so the packed checkpoint decodes to exactly the fake-quantized
    /// weights GPTQ's error feedback saw.
    public static let fp32Parameters = ReferenceCompat(rawValue: 1 << 4)

    /// Spec §4.1: `torch.sign(w − μ)` is 0 for a weight equal to its group's mean, a third level
    /// (ŵ = μ) that a 1-bit code cannot hold (the reference stores 2 bits per 1-bit weight).
    /// Clean: sign(0) = +1, so 1-bit groups are truly binary. Checkpoints quantized with this
    /// flag can only be written as fake-quantized weights.
    public static let ternarySign = ReferenceCompat(rawValue: 1 << 5)

    /// Spec §3.2–§3.4: the reference ranks all ⌈C/G⌉ groups by salience, a last group shorter
    /// than the group size included, and balances the NUMBER of N−1 and N+1 groups. When the
    /// short group lands at N±1, the width-weighted mean code bits is not N (SmolLM2, C = 576,
    /// G = 128: 2.051 instead of 2). Clean: a short last group is never ranked and always gets
    /// N bits; the search and the final allocation move only full-width groups, so every mixed
    /// allocation averages exactly N bits per weight. (LLaMA widths are multiples of 128: the
    /// reference never meets this case.)
    public static let rankShortGroup = ReferenceCompat(rawValue: 1 << 6)

    /// Every quirk above.
    public static let all: ReferenceCompat = [.doubleDamp, .symLeak, .searchRange, .klBiasOnlyInReference,
                                              .fp32Parameters, .ternarySign, .rankShortGroup]
}

// MARK: - Methods and options

/// How the weights of one linear layer are quantized.
public enum QuantMethod: String, Sendable, CaseIterable {
    /// Round-to-nearest: asymmetric min-max per (row, group), no Hessian, no error feedback.
    case rtn
    /// GPTQ with groups: min-max fit per (row, group) at group entry on the error-updated
    /// weights, per-column error feedback and lazy block updates (spec §5). No SQC.
    case gptq
    /// SliM-LLM: SBA allocation (or a fixed one), SQC fit (τ grid, ℓ2.4 loss, spec §4) and the
    /// GPTQ loop.
    case slim
}

/// Parameters of a quantization run for one linear layer.
public struct QuantizationOptions: Sendable {
    /// The method (fit + error feedback).
    public var method: QuantMethod
    /// Target bit width N. RTN/GPTQ: 1…8 (1 uses the binary quantizer of spec §4.1).
    /// SliM: 2…7 (groups get N−1, N or N+1 bits).
    public var bits: Int
    /// Consecutive input columns per group (= GPTQ block size). The last group may be shorter.
    public var groupSize: Int
    /// Relative diagonal damping: `percdamp · mean(diag(H))` is added before factorizing.
    public var percdamp: Double
    /// Maximum number of retries with 10× more damping when the Cholesky factorization fails.
    public var maxDampingRetries: Int
    /// SQC weight λ of salient elements (spec §4.2); 1 (the reference default) makes the
    /// salience mask irrelevant, so it is not computed.
    public var lambdaSalience: Float
    /// Reference quirks to reproduce (default none).
    public var compat: ReferenceCompat
    /// Upper bound on worker threads. Results never depend on it.
    public var threads: Int

    public init(method: QuantMethod, bits: Int, groupSize: Int = 128, percdamp: Double = 0.01,
                maxDampingRetries: Int = 6, lambdaSalience: Float = 1, compat: ReferenceCompat = [],
                threads: Int = Kernels.defaultThreads) {
        self.method = method
        self.bits = bits
        self.groupSize = groupSize
        self.percdamp = percdamp
        self.maxDampingRetries = maxDampingRetries
        self.lambdaSalience = lambdaSalience
        self.compat = compat
        self.threads = threads
    }

    /// Throws `QuantError.invalidOption` when a field is out of range.
    public func validate() throws {
        switch method {
        case .rtn, .gptq:
            guard (1...8).contains(bits) else {
                throw QuantError.invalidOption("bits must be 1…8 for \(method.rawValue), got \(bits)")
            }
        case .slim:
            guard (2...7).contains(bits) else {
                throw QuantError.invalidOption("bits must be 2…7 for slim (groups use N−1…N+1), got \(bits)")
            }
        }
        guard groupSize >= 1 else { throw QuantError.invalidOption("group size must be ≥ 1, got \(groupSize)") }
        guard percdamp >= 0, percdamp.isFinite else {
            throw QuantError.invalidOption("percdamp must be finite and ≥ 0, got \(percdamp)")
        }
        guard maxDampingRetries >= 0 else {
            throw QuantError.invalidOption("maxDampingRetries must be ≥ 0, got \(maxDampingRetries)")
        }
        guard lambdaSalience >= 0, lambdaSalience.isFinite else {
            throw QuantError.invalidOption("lambdaSalience must be finite and ≥ 0, got \(lambdaSalience)")
        }
    }
}

// MARK: - Bit allocation

/// How many bits each group gets.
public enum BitAllocation: Sendable, Equatable {
    /// Every group at the target N bits.
    case uniform
    /// SliM-LLM ranking (spec §3.4): of the ranked groups (`Salience.rankedGroupCount`: the
    /// full-width ones; a short last group stays at N bits), the `count` least salient get N−1
    /// bits, the `count` most salient N+1, the rest N, ranked by the salience computed on the
    /// GPTQ-side weight and U (stable order on (salience, index)). `count` is the SBA result i*
    /// (`SBAResult.best`) and must be ≤ (ranked groups)/2.
    case mixed(count: Int)
    /// Bits per group verbatim (e.g. from an allocation file), each 1…8; SBA is skipped.
    case fixed([UInt8])
}

// MARK: - Errors

/// Errors from SlimQuant. Descriptions say what is wrong and with which value.
public enum QuantError: Error, CustomStringConvertible, Equatable {
    case invalidOption(String)
    case shapeMismatch(String)
    case nonFinite(String)
    /// The damped Hessian could not be factorized even after the allowed retries.
    case factorizationFailed(columns: Int, retries: Int, lastDamping: Double)
    case invalidAllocation(String)
    case invalidArgument(String)

    public var description: String {
        switch self {
        case .invalidOption(let message): return "invalid quantization option: \(message)"
        case .shapeMismatch(let message): return "shape mismatch: \(message)"
        case .nonFinite(let message): return "non-finite value: \(message)"
        case .factorizationFailed(let columns, let retries, let damping):
            return "Cholesky factorization of the \(columns)×\(columns) Hessian failed after \(retries) "
                + "retries (last diagonal damping \(damping))"
        case .invalidAllocation(let message): return "invalid bit allocation: \(message)"
        case .invalidArgument(let message): return "invalid argument: \(message)"
        }
    }
}

// MARK: - Size helpers

enum Shape {
    /// rows·columns, throwing on negative sizes or overflow.
    static func elementCount(_ rows: Int, _ columns: Int, _ what: String) throws -> Int {
        guard rows >= 0, columns >= 0 else {
            throw QuantError.shapeMismatch("\(what): negative size \(rows)×\(columns)")
        }
        let (product, overflow) = rows.multipliedReportingOverflow(by: columns)
        guard !overflow else { throw QuantError.shapeMismatch("\(what): size \(rows)×\(columns) overflows") }
        return product
    }

    /// ⌈columns / groupSize⌉.
    static func groupCount(columns: Int, groupSize: Int) -> Int {
        columns == 0 ? 0 : (columns - 1) / groupSize + 1
    }
}
