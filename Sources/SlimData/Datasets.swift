import SlimIO

// MARK: - Names

/// The evaluation / calibration corpora of the reference pipelines.
public enum DatasetName: String, CaseIterable, Sendable {
    case wikitext2
    case ptb
    case c4

    /// Human-readable name used in labels.
    public var displayName: String {
        switch self {
        case .wikitext2: return "WikiText-2"
        case .ptb: return "PTB"
        case .c4: return "C4"
        }
    }

    /// The split a protocol uses by default: evaluation reads `test` (C4: `validation`, it has
    /// no test split), calibration reads `train`.
    public func defaultSplit(for use: DatasetProtocol) -> Split {
        switch use {
        case .eval: return self == .c4 ? .validation : .test
        case .calibration: return .train
        }
    }
}

public enum Split: String, CaseIterable, Sendable {
    case train
    case validation
    case test
}

/// Which reference recipe turns the files into one string.
public enum DatasetProtocol: String, CaseIterable, Sendable {
    /// Perplexity evaluation (GPTQ / SliM-LLM `get_loaders(...)[1]`): WikiText-2 rows joined
    /// with "\n\n"; PTB sentences joined with " "; C4 "c4-new": the first 1,100 documents
    /// joined with " " (then truncated to 256 × context tokens after tokenization, see
    /// `TokenWindows.truncateC4Eval`).
    case eval
    /// SliM-LLM calibration text: WikiText-2 rows joined with " " (SliM-LLM; SliM-LLM+ uses
    /// "\n\n"), PTB sentences joined with " ", C4: every document (GPTQ samples documents
    /// one at a time: see `DatasetText.documents`).
    case calibration
}

/// Documents GPTQ's "c4-new" evaluation keeps.
public let c4EvalDocumentCount = 1100

// MARK: - Loaded text

/// The exact string a protocol tokenizes, with where it came from.
public struct DatasetText: Sendable {
    /// The joined corpus.
    public let text: String
    /// Files read, in order.
    public let source: [String]
    /// Name for reports, e.g. "WikiText-2 test", "C4 subset validation"; says "excerpt" or
    /// "subset" when the file is not the full original split.
    public let label: String
    /// Rows (WikiText lines, PTB sentences, C4 documents) joined into `text`.
    public let rows: Int
    /// C4 only: the documents, one string each (GPTQ's C4 calibration samples documents).
    public let documents: [String]?
    /// One result per file read, comparing it with the committed dataset manifest.
    public let checks: [ManifestCheck]
    /// The corpus and recipe that produced the text; nil for a plain text file.
    public let dataset: DatasetName?
    public let use: DatasetProtocol?

    /// True when tokens of this text get GPTQ's C4 evaluation truncation (256 × context).
    public var needsC4EvalTruncation: Bool { dataset == .c4 && use == .eval }

    /// Characters as Python's `len` counts them (Unicode code points).
    public var characterCount: Int { text.unicodeScalars.count }

    /// Warnings for the files that differ from the known originals (empty when all match or
    /// are unknown to the manifest).
    public var warnings: [String] { checks.compactMap(\.warning) }
}

// MARK: - Recipes on explicit files

extension DatasetText {
    /// Applies `name`'s recipe for `use` to one file. `label` names the result; `checks` are
    /// attached as given (the locator fills them in).
    public static func load(_ name: DatasetName, file: String, protocol use: DatasetProtocol, label: String,
                            checks: [ManifestCheck] = []) throws(FileError) -> DatasetText {
        switch name {
        case .wikitext2:
            let joined = try DatasetReaders.wikiText(path: file, separator: use == .eval ? "\n\n" : " ")
            return DatasetText(text: joined.text, source: [file], label: label, rows: joined.rows, documents: nil, checks: checks,
                               dataset: name, use: use)
        case .ptb:
            let joined = try DatasetReaders.ptb(path: file)
            return DatasetText(text: joined.text, source: [file], label: label, rows: joined.rows, documents: nil, checks: checks,
                               dataset: name, use: use)
        case .c4:
            let docs = try DatasetReaders.c4Documents(path: file, limit: use == .eval ? c4EvalDocumentCount : nil)
            guard !docs.isEmpty else { throw FileError(file, "no C4 documents in the file") }
            var fullLabel = label
            if use == .eval && docs.count < c4EvalDocumentCount {
                fullLabel += " (only \(docs.count) of \(c4EvalDocumentCount) documents)"
            }
            return DatasetText(text: DatasetReaders.joinDocuments(docs), source: [file], label: fullLabel,
                               rows: docs.count, documents: docs, checks: checks, dataset: name, use: use)
        }
    }

    /// A plain UTF-8 text file used as is (no joining, no newline changes).
    public static func plainText(file: String) throws(FileError) -> DatasetText {
        let text = try loadTextFile(path: file)
        let name = file.split(separator: "/").last.map(String.init) ?? file
        return DatasetText(text: text, source: [file], label: name, rows: 1, documents: nil, checks: [],
                           dataset: nil, use: nil)
    }
}
