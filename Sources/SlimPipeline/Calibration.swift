import Foundation
import SlimData
import SlimIO
import SlimQuant
import SlimTokenizer

// Calibration data as the reference builds it (spec §1.3): the calibration text tokenized once,
// then N windows of L tokens at the offsets CPython's `random.seed(seed); randint(0, T−L−1)`
// draws. C4 follows GPTQ's document sampling instead (one random document with more than L
// tokens per sample, then a random window inside it).

// MARK: - Source

/// Where the calibration text comes from.
public enum CalibrationSource: Equatable, Sendable {
    /// A named corpus through `DatasetLocator` with the `.calibration` recipe (WikiText-2: train
    /// rows joined with " "; PTB: train sentences joined with " "; C4: train documents).
    /// `dataDir` is the CLI's `--data-dir` (nil: `$SLIM_DATA_DIR`, else ../shared/data).
    case dataset(DatasetName, dataDir: String?)
    /// Any UTF-8 text file, tokenized as is.
    case file(String)
}

// MARK: - Sampled windows

/// The calibration windows of one run plus what identifies them.
public struct CalibrationSet: Sendable {
    /// What was read, e.g. "WikiText-2 train excerpt" or a file name.
    public let label: String
    /// The files read, in order.
    public let files: [String]
    /// sha256 of the bytes of `files` (concatenated in order).
    public let sha256: String
    /// T: tokens in the tokenized calibration text (C4: tokens of the documents sampled).
    public let tokenCount: Int
    public let seed: Int
    /// L, tokens per window.
    public let sequenceLength: Int
    /// Start offset of each window (C4: inside its document).
    public let offsets: [Int]
    /// N windows of exactly L token ids.
    public let windows: [[Int]]
    /// Dataset-manifest warnings (a file that differs from the known original).
    public let warnings: [String]

    /// N.
    public var sampleCount: Int { windows.count }

    /// The file name shown in allocation files: the last path component of the first file.
    public var fileName: String { (files.first.map { ($0 as NSString).lastPathComponent }) ?? label }

    /// Loads, tokenizes and samples.
    /// - Parameters:
    ///   - count: N ≥ 1 windows.
    ///   - length: L ≥ 1 tokens per window.
    /// - Throws: `FileError` naming the calibration file when it cannot be read, is not UTF-8,
    ///   or is too short for one window (T ≤ L); `QuantError` for invalid counts.
    public static func load(_ source: CalibrationSource, tokenizer: Tokenizer, count: Int, length: Int,
                            seed: Int) throws -> CalibrationSet {
        guard count >= 1 else { throw QuantError.invalidArgument("calibration sample count must be ≥ 1, got \(count)") }
        guard length >= 1 else { throw QuantError.invalidArgument("calibration sequence length must be ≥ 1, got \(length)") }
        let text: DatasetText
        switch source {
        case .file(let path):
            text = try DatasetText.plainText(file: path)
        case .dataset(let name, let dataDir):
            text = try DatasetLocator(dataDir: dataDir).text(name, protocol: .calibration)
        }
        let digest = try sha256(of: text.source)
        if let documents = text.documents {
            return try sampleDocuments(documents, text: text, sha256: digest, tokenizer: tokenizer,
                                       count: count, length: length, seed: seed)
        }
        let tokens = tokenizer.encode(text.text, addSpecialTokens: true)
        let where_ = text.source.first ?? text.label
        guard tokens.count > length else {
            throw FileError(where_, "calibration text of \(text.label) has \(tokens.count) tokens, too short for one "
                + "\(length)-token sample (needs at least \(length + 1)): use a longer --calibration file or a smaller --seq-len")
        }
        let offsets = try CalibrationSampling.calibrationOffsets(seed: seed, count: count, tokenCount: tokens.count,
                                                                 length: length)
        let windows = offsets.map { Array(tokens[$0 ..< $0 + length]) }
        return CalibrationSet(label: text.label, files: text.source, sha256: digest, tokenCount: tokens.count, seed: seed,
                              sequenceLength: length, offsets: offsets, windows: windows, warnings: text.warnings)
    }

    /// GPTQ's `get_c4` sampling: per window, draw documents with `randint(0, D−1)` until one
    /// has more than L tokens, then `randint(0, len−L−1)` inside it. Each document is tokenized
    /// on its own (with the tokenizer's special tokens) the first time it is drawn.
    static func sampleDocuments(_ documents: [String], text: DatasetText, sha256: String, tokenizer: Tokenizer,
                                count: Int, length: Int, seed: Int) throws -> CalibrationSet {
        let where_ = text.source.first ?? text.label
        guard !documents.isEmpty else { throw FileError(where_, "no documents to calibrate on") }
        // Bound the rejection loop: a corpus without a long enough document would never end.
        let maxDraws = max(100_000, 100 * count)
        var rng = PythonRandom(seed: seed)
        var cache: [Int: [Int]] = [:]
        var offsets: [Int] = [], windows: [[Int]] = []
        var tokenTotal = 0
        var draws = 0
        for _ in 0..<count {
            var ids: [Int]
            repeat {
                draws += 1
                guard draws <= maxDraws else {
                    throw FileError(where_, "no document with more than \(length) tokens found in \(maxDraws) random draws "
                        + "from \(documents.count) documents: use a smaller --seq-len or another calibration set")
                }
                let d = rng.randint(0, documents.count - 1)
                if let cached = cache[d] {
                    ids = cached
                } else {
                    ids = tokenizer.encode(documents[d], addSpecialTokens: true)
                    cache[d] = ids
                }
            } while ids.count <= length
            let start = rng.randint(0, ids.count - length - 1)
            tokenTotal += ids.count
            offsets.append(start)
            windows.append(Array(ids[start ..< start + length]))
        }
        return CalibrationSet(label: text.label, files: text.source, sha256: sha256, tokenCount: tokenTotal, seed: seed,
                              sequenceLength: length, offsets: offsets, windows: windows, warnings: text.warnings)
    }

    /// sha256 of the files' bytes, concatenated in order.
    static func sha256(of files: [String]) throws -> String {
        var hash = SHA256()
        for path in files {
            let file = try MappedFile(path: path)
            withExtendedLifetime(file) { hash.update(file.bytes) }
        }
        return hash.finalize()
    }
}
