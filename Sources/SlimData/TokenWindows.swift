import SlimTokenizer

/// A tokenized corpus cut into the non-overlapping evaluation windows of the reference
/// perplexity loop: window i is `tokens[i·ctx ..< (i+1)·ctx]`, and the trailing partial
/// window is dropped (`nsamples = numel // seqlen` in GPTQ / SliM-LLM).
public struct TokenWindows: Sendable {
    /// Every token of the corpus (after protocol truncation, see `truncateC4Eval`).
    public let tokens: [Int]
    public let contextLength: Int
    /// Where the tokens came from, for reports.
    public let label: String

    /// - Precondition: `contextLength > 0` (checked: a non-positive length is a programming
    ///   error in the caller's argument validation).
    public init(tokens: [Int], contextLength: Int, label: String) {
        precondition(contextLength > 0, "context length must be positive")
        self.tokens = tokens
        self.contextLength = contextLength
        self.label = label
    }

    /// Full windows.
    public var count: Int { tokens.count / contextLength }
    /// Tokens after the last full window, which evaluation ignores.
    public var droppedTokens: Int { tokens.count % contextLength }

    /// Window `i` (0 ≤ i < count).
    public subscript(i: Int) -> ArraySlice<Int> {
        precondition(i >= 0 && i < count, "window \(i) out of range 0..<\(count)")
        return tokens[(i * contextLength)..<((i + 1) * contextLength)]
    }

    /// "N windows of ctx tokens (M tokens, K dropped)".
    public var summary: String {
        "\(label): \(count) windows of \(contextLength) tokens (\(tokens.count) tokens, \(droppedTokens) trailing tokens dropped)"
    }

    // MARK: C4 truncation

    /// Windows GPTQ's "c4-new" evaluation keeps: `valenc[:, :256 * seqlen]`.
    public static let c4EvalWindowCount = 256

    /// The first `256 × contextLength` tokens, as the reference C4 evaluation keeps after
    /// tokenizing the joined 1,100 documents (all of them when there are fewer).
    public static func truncateC4Eval(_ tokens: [Int], contextLength: Int) -> [Int] {
        let (limit, overflow) = c4EvalWindowCount.multipliedReportingOverflow(by: max(contextLength, 0))
        if overflow || tokens.count <= limit { return tokens }
        return Array(tokens.prefix(limit))
    }

    // MARK: From text

    /// Tokenizes a dataset text the way the reference evaluation does: the whole string at
    /// once with the tokenizer's default special tokens (one BOS for LLaMA), then, for C4's
    /// evaluation protocol (`text.needsC4EvalTruncation`), the 256 × ctx truncation.
    ///
    /// - Parameter encode: the tokenizer's encoder, e.g.
    ///   `{ tokenizer.encode($0, addSpecialTokens: true) }`.
    public static func make(from text: DatasetText, contextLength: Int,
                            encode: (String) throws -> [Int]) rethrows -> TokenWindows {
        var tokens = try encode(text.text)
        if text.needsC4EvalTruncation { tokens = truncateC4Eval(tokens, contextLength: contextLength) }
        return TokenWindows(tokens: tokens, contextLength: contextLength, label: text.label)
    }

    /// `make(from:contextLength:encode:)` with `tokenizer.encode(_:addSpecialTokens: true)`.
    public static func make(from text: DatasetText, contextLength: Int, tokenizer: Tokenizer) -> TokenWindows {
        make(from: text, contextLength: contextLength) { tokenizer.encode($0, addSpecialTokens: true) }
    }
}
