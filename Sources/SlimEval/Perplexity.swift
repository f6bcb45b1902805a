import Dispatch
import Foundation

/// How windows are cut from the token stream and which positions are scored.
public enum PerplexityProtocol: String, CaseIterable, Sendable {
    /// GPTQ / SliM-LLM (`llama_eval`): the text tokenized once, non-overlapping windows of `ctx`
    /// tokens (trailing remainder dropped), every next-token position of a window scored
    /// (ctx − 1 per window), PPL = exp(mean over windows of the window's mean NLL).
    case paper
    /// llama.cpp `perplexity`: non-overlapping windows of `ctx` (default 512) tokens whose first
    /// token is replaced by BOS (when the tokenizer adds one), only the second half scored
    /// (positions ctx/2 … ctx−2 predicting the next token), PPL = exp(total NLL / count), with
    /// llama.cpp's "PPL = x +/- y" standard error. Needs at least 2·ctx tokens, as llama.cpp does.
    case llamacpp
}

/// Anything that scores a window: element t of the result is −log p(window[t+1] | window[...t])
/// for t in 0 ..< T−1. Runtimes implement this without materialising T × vocab logits.
public protocol NextTokenScorer {
    func negativeLogLikelihoods(window: [Int]) throws -> [Double]
}

/// Anything that turns a window of token ids into next-token logits, row-major [T × vocab].
public protocol LogitsModel: NextTokenScorer {
    var vocabularySize: Int { get }
    func logits(tokens: [Int]) throws -> [Float]
}

extension LogitsModel {
    /// Scores from full logits with `Scoring` (float64 log-sum-exp).
    public func negativeLogLikelihoods(window: [Int]) throws -> [Double] {
        let logits = try logits(tokens: window)
        let vocab = vocabularySize
        guard logits.count == window.count * vocab else {
            throw PerplexityError(message: "model returned \(logits.count) logits for \(window.count) tokens × vocabulary \(vocab)")
        }
        return try Scoring.negativeLogLikelihoods(logits: logits, vocabulary: vocab, positions: 0..<(window.count - 1),
                                                  targets: Array(window.dropFirst()))
    }
}

/// Progress of an evaluation, reported after every window.
public struct PerplexityProgress: Sendable {
    public let windowsDone: Int
    public let windowsTotal: Int
    /// The PPL over the windows done so far, by the protocol's own formula.
    public let runningPerplexity: Double
    public let elapsedSeconds: Double
    public var etaSeconds: Double {
        windowsDone == 0 ? .nan : elapsedSeconds / Double(windowsDone) * Double(windowsTotal - windowsDone)
    }
}

/// The outcome of a perplexity evaluation.
public struct PerplexityResult: Sendable {
    public let protocolName: PerplexityProtocol
    public let contextLength: Int
    public let perplexity: Double
    /// llama.cpp's standard error of the PPL (nil for the paper protocol).
    public let uncertainty: Double?
    public let windows: Int
    public let tokensInStream: Int
    public let positionsScored: Int
    /// Mean NLL (nats) of each window.
    public let windowMeanNLL: [Double]
    public let seconds: Double
    /// Tokens passed through the model per second (windows × ctx / seconds).
    public var tokensPerSecond: Double { Double(windows * contextLength) / max(seconds, 1e-9) }
}

/// A perplexity evaluation error (not enough tokens, bad logits).
public struct PerplexityError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public var description: String { message }
}

// MARK: - Evaluation

public struct PerplexityEvaluator: Sendable {
    public let protocolName: PerplexityProtocol
    public let contextLength: Int
    /// Evaluate at most this many windows (nil: all).
    public let maxWindows: Int?
    /// BOS id substituted at the start of each window (llama.cpp protocol); nil: no substitution.
    public let bosTokenID: Int?

    public init(protocol p: PerplexityProtocol, contextLength: Int, maxWindows: Int? = nil, bosTokenID: Int? = nil) {
        protocolName = p
        self.contextLength = contextLength
        self.maxWindows = maxWindows
        self.bosTokenID = bosTokenID
    }

    /// The windows the protocol evaluates, as token arrays (BOS substituted where it applies).
    /// - Throws: when the stream is too short for one window (paper) or two (llama.cpp).
    public func windows(of tokens: [Int]) throws(PerplexityError) -> [[Int]] {
        let ctx = contextLength
        guard ctx >= 2 else { throw PerplexityError(message: "context length must be at least 2 (got \(ctx))") }
        let minimum = protocolName == .llamacpp ? 2 * ctx : ctx
        guard tokens.count >= minimum else {
            throw PerplexityError(message: "the text has \(tokens.count) tokens; the \(protocolName.rawValue) protocol needs at least \(minimum) for a context of \(ctx)")
        }
        var n = tokens.count / ctx
        if let maxWindows { n = min(n, maxWindows) }
        return (0..<n).map { i in
            var w = Array(tokens[(i * ctx)..<((i + 1) * ctx)])
            if protocolName == .llamacpp, let bos = bosTokenID { w[0] = bos }
            return w
        }
    }

    /// The positions of a window whose next-token prediction is scored.
    public var scoredPositions: Range<Int> {
        switch protocolName {
        case .paper: return 0..<(contextLength - 1)
        case .llamacpp: return (contextLength / 2)..<(contextLength - 1)
        }
    }

    /// Runs the evaluation. `progress` is called after each window.
    public func evaluate(
        tokens: [Int], model: some NextTokenScorer, progress: (PerplexityProgress) -> Void = { _ in }
    ) throws -> PerplexityResult {
        let windows = try self.windows(of: tokens)
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
        var windowMeans: [Double] = []
        var sum = 0.0, sumSquares = 0.0, count = 0
        let positions = scoredPositions
        for (w, window) in windows.enumerated() {
            // Targets are the window's own next tokens: the llama.cpp BOS substitution only
            // changes the input at position 0, which is never a target.
            let all = try model.negativeLogLikelihoods(window: window)
            guard all.count == window.count - 1 else {
                throw PerplexityError(message: "scorer returned \(all.count) values for a window of \(window.count) tokens")
            }
            let nll = Array(all[positions])
            if let bad = nll.firstIndex(where: { !$0.isFinite }) {
                throw PerplexityError(message: "non-finite NLL at position \(positions.lowerBound + bad) of window \(w)")
            }
            let s = nll.reduce(0, +)
            sum += s
            sumSquares += nll.reduce(0) { $0 + $1 * $1 }
            count += nll.count
            windowMeans.append(s / Double(nll.count))
            progress(PerplexityProgress(windowsDone: w + 1, windowsTotal: windows.count,
                                        runningPerplexity: running(windowMeans, sum, count),
                                        elapsedSeconds: elapsed()))
        }
        let ppl = running(windowMeans, sum, count)
        var uncertainty: Double?
        if protocolName == .llamacpp {
            // llama.cpp: sd of per-token NLL / sqrt(count−1), scaled by PPL (delta method).
            let mean = sum / Double(count)
            let variance = sumSquares / Double(count) - mean * mean
            if variance > 0, count > 1 { uncertainty = (variance / Double(count - 1)).squareRoot() * ppl }
        }
        return PerplexityResult(protocolName: protocolName, contextLength: contextLength, perplexity: ppl,
                                uncertainty: uncertainty, windows: windows.count, tokensInStream: tokens.count,
                                positionsScored: count, windowMeanNLL: windowMeans, seconds: elapsed())
    }

    private func running(_ windowMeans: [Double], _ sum: Double, _ count: Int) -> Double {
        switch protocolName {
        case .paper: return exp(windowMeans.reduce(0, +) / Double(windowMeans.count))
        case .llamacpp: return exp(sum / Double(count))
        }
    }
}

// MARK: - Scoring

public enum Scoring {
    /// −log softmax(logits[p])[target] for each scored position p, in Double. Rows are scored in
    /// parallel; the result does not depend on the thread count (each row is reduced alone).
    /// - Throws: if a row contains NaN or +∞ (a broken model must not produce a finite PPL), or a
    ///   target is outside the vocabulary.
    public static func negativeLogLikelihoods(
        logits: [Float], vocabulary: Int, positions: Range<Int>, targets: [Int]
    ) throws(PerplexityError) -> [Double] {
        precondition(targets.count == positions.count)
        for t in targets where t < 0 || t >= vocabulary {
            throw PerplexityError(message: "target token id \(t) is outside the vocabulary (\(vocabulary))")
        }
        var out = [Double](repeating: .nan, count: positions.count)
        logits.withUnsafeBufferPointer { l in
            out.withUnsafeMutableBufferPointer { o in
                let oBase = o.baseAddress!
                DispatchQueue.concurrentPerform(iterations: positions.count) { i in
                    let row = UnsafeBufferPointer(rebasing: l[((positions.lowerBound + i) * vocabulary)..<((positions.lowerBound + i + 1) * vocabulary)])
                    oBase[i] = rowNLL(row, target: targets[i])
                }
            }
        }
        if let bad = out.firstIndex(where: { !$0.isFinite }) {
            throw PerplexityError(message: "non-finite logits at position \(positions.lowerBound + bad)")
        }
        return out
    }

    /// log Σ exp(x) − x[target], max-subtracted, accumulated in Double. NaN or +∞ anywhere in the
    /// row gives NaN.
    @inline(__always)
    static func rowNLL(_ row: UnsafeBufferPointer<Float>, target: Int) -> Double {
        var m = -Float.infinity
        for v in row {
            if v.isNaN || v == .infinity { return .nan }
            m = max(m, v)
        }
        var s = 0.0
        for v in row { s += Foundation.exp(Double(v - m)) }
        return Foundation.log(s) + Double(m) - Double(row[target])
    }
}
