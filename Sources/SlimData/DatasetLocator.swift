import Foundation
import SlimIO

/// Finds dataset files and loads them with the reference recipes.
///
/// **Where the data directory comes from** (first that applies):
/// 1. `dataDir` (the CLI's `--data-dir`), used as given; it must exist.
/// 2. The environment variable `SLIM_DATA_DIR`, when set and non-empty; it must exist.
/// 3. `../shared/data` relative to the current directory, only when that directory exists
///    (the layout of this project's checkout; never searched further up).
/// 4. None: asking for a dataset then fails with an error saying how to provide one.
///
/// **Layout inside it** (the original file names, as in `../shared/data`):
/// `wikitext-2-raw/wiki.{train,valid,test}.raw` (train falls back to `wiki.train.excerpt.txt`,
/// labelled as an excerpt), `ptb/ptb.{train,valid,test}.txt`,
/// `c4/c4-validation.00000-of-00008.json[.gz]` (falls back to
/// `c4/c4-validation.subset-2000.json.gz`, labelled "C4 subset") and
/// `c4/c4-train.00000-of-01024.json[.gz]`.
public struct DatasetLocator: Sendable {
    /// How the data directory was chosen (for messages).
    public enum Origin: String, Sendable {
        case flag = "--data-dir"
        case environment = "SLIM_DATA_DIR"
        case sharedDefault = "default ../shared/data"
    }

    /// The resolved data directory, or nil when none was given and the default is absent.
    public let dataDir: String?
    public let origin: Origin?
    /// Compare every file read with the built-in manifest (sha256 of each file; costs one
    /// extra pass over the bytes).
    public var verifyAgainstManifest = true
    public var manifest: DatasetManifest = .builtin

    public static let environmentVariable = "SLIM_DATA_DIR"
    public static let sharedDefault = "../shared/data"

    public init(dataDir: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                currentDirectory: String = FileManager.default.currentDirectoryPath) {
        if let dataDir {
            self.dataDir = dataDir
            origin = .flag
        } else if let env = environment[Self.environmentVariable], !env.isEmpty {
            self.dataDir = env
            origin = .environment
        } else {
            let candidate = currentDirectory.hasSuffix("/") ? currentDirectory + Self.sharedDefault
                : currentDirectory + "/" + Self.sharedDefault
            if Self.isDirectory(candidate) {
                self.dataDir = candidate
                origin = .sharedDefault
            } else {
                self.dataDir = nil
                origin = nil
            }
        }
    }

    static func isDirectory(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue
    }

    static func isFile(_ path: String) -> Bool {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && !isDir.boolValue
    }

    // MARK: File candidates

    /// One file that can serve a split, relative to the data directory.
    public struct Candidate: Equatable, Sendable {
        public let relativePath: String
        /// Label of the text it produces, e.g. "WikiText-2 train excerpt".
        public let label: String
    }

    /// The files that can serve `name`/`split`, preferred first. Empty for C4 `test`.
    public static func candidates(_ name: DatasetName, split: Split) -> [Candidate] {
        switch (name, split) {
        case (.wikitext2, .train):
            return [Candidate(relativePath: "wikitext-2-raw/wiki.train.raw", label: "WikiText-2 train"),
                    Candidate(relativePath: "wikitext-2-raw/wiki.train.excerpt.txt", label: "WikiText-2 train excerpt")]
        case (.wikitext2, .validation):
            return [Candidate(relativePath: "wikitext-2-raw/wiki.valid.raw", label: "WikiText-2 validation")]
        case (.wikitext2, .test):
            return [Candidate(relativePath: "wikitext-2-raw/wiki.test.raw", label: "WikiText-2 test")]
        case (.ptb, _):
            let file = split == .validation ? "valid" : split.rawValue
            return [Candidate(relativePath: "ptb/ptb.\(file).txt", label: "PTB \(split.rawValue)")]
        case (.c4, .validation):
            return [Candidate(relativePath: "c4/c4-validation.00000-of-00008.json.gz", label: "C4 validation"),
                    Candidate(relativePath: "c4/c4-validation.00000-of-00008.json", label: "C4 validation"),
                    Candidate(relativePath: "c4/c4-validation.subset-2000.json.gz", label: "C4 subset validation")]
        case (.c4, .train):
            return [Candidate(relativePath: "c4/c4-train.00000-of-01024.json.gz", label: "C4 train"),
                    Candidate(relativePath: "c4/c4-train.00000-of-01024.json", label: "C4 train")]
        case (.c4, .test):
            return []
        }
    }

    /// Where to get the originals, for error messages.
    public static func downloadHint(_ name: DatasetName) -> String {
        switch name {
        case .wikitext2:
            return "download WikiText-2 raw (config wikitext-2-raw-v1 of the Salesforce/wikitext dataset on Hugging Face, or wikitext-2-raw-v1.zip) and put wiki.*.raw under <data>/wikitext-2-raw/"
        case .ptb:
            return "download the Penn Treebank language-modelling files ptb.{train,valid,test}.txt (the ptb_text_only dataset's source, data/ in Mikolov's simple-examples.tgz) and put them under <data>/ptb/"
        case .c4:
            return "download en/c4-validation.00000-of-00008.json.gz (and en/c4-train.00000-of-01024.json.gz for calibration) from the allenai/c4 dataset on Hugging Face and put them under <data>/c4/"
        }
    }

    // MARK: Resolving and loading

    /// The file that serves `name`/`split` and its label, or an error saying what was tried.
    public func locate(_ name: DatasetName, split: Split) throws(FileError) -> (path: String, label: String) {
        let candidates = Self.candidates(name, split: split)
        guard !candidates.isEmpty else {
            throw FileError(name.rawValue, "\(name.displayName) has no \(split.rawValue) split; use validation")
        }
        guard let dataDir, let origin else {
            throw FileError(Self.sharedDefault, "no dataset directory: pass --data-dir DIR or set \(Self.environmentVariable) "
                + "(expected \(candidates[0].relativePath) inside it); \(Self.downloadHint(name))")
        }
        guard Self.isDirectory(dataDir) else {
            throw FileError(dataDir, "dataset directory (from \(origin.rawValue)) does not exist or is not a directory")
        }
        for c in candidates {
            let path = dataDir.hasSuffix("/") ? dataDir + c.relativePath : dataDir + "/" + c.relativePath
            if Self.isFile(path) { return (path, c.label) }
        }
        let tried = candidates.map(\.relativePath).joined(separator: ", ")
        throw FileError(dataDir, "no \(name.displayName) \(split.rawValue) file (looked for \(tried); data directory from \(origin.rawValue)); "
            + "\(Self.downloadHint(name)), or set \(Self.environmentVariable)")
    }

    /// Loads `name`/`split` with `use`'s recipe, checking the file against the manifest.
    public func text(_ name: DatasetName, split: Split, protocol use: DatasetProtocol) throws(FileError) -> DatasetText {
        let (path, label) = try locate(name, split: split)
        let checks = verifyAgainstManifest ? [try manifest.check(path: path)] : []
        return try DatasetText.load(name, file: path, protocol: use, label: label, checks: checks)
    }

    /// Loads `name` with the protocol's default split (see `DatasetName.defaultSplit`).
    public func text(_ name: DatasetName, protocol use: DatasetProtocol) throws(FileError) -> DatasetText {
        try text(name, split: name.defaultSplit(for: use), protocol: use)
    }
}
