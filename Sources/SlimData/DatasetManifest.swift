import Foundation
import SlimIO

/// The dataset files this project knows (size, sha256, line count, which protocol reads them),
/// so a run can say whether its data is the original split or something else.
///
/// The table is produced by `scripts/make_manifest.py` from `../shared/data`, which writes
/// both `calibration/datasets.json` and the compiled-in copy `DatasetManifest.builtin`
/// (KnownDatasets.swift); SlimDataTests checks the two agree.
public struct DatasetManifest: Equatable, Sendable {
    public struct Entry: Equatable, Sendable {
        /// Path relative to the data directory, e.g. "ptb/ptb.test.txt".
        public let name: String
        public let bytes: Int
        /// Lowercase hex sha256 of the file as stored (compressed for .gz).
        public let sha256: String
        /// Newline count of the (decompressed) content.
        public let lines: Int
        /// Protocols that read the file, e.g. "wikitext2 eval".
        public let uses: [String]

        public init(name: String, bytes: Int, sha256: String, lines: Int, uses: [String]) {
            self.name = name
            self.bytes = bytes
            self.sha256 = sha256
            self.lines = lines
            self.uses = uses
        }

        /// The last path component of `name`.
        public var fileName: String { name.split(separator: "/").last.map(String.init) ?? name }
    }

    public let entries: [Entry]

    public init(entries: [Entry]) {
        self.entries = entries
    }

    /// Parses the `calibration/datasets.json` format: `{"files": [{name, bytes, sha256,
    /// lines, uses}, …], …}`. `path` names the source in errors.
    public init(json: JSON, path: String) throws(FileError) {
        guard let files = json["files"]?.array else { throw FileError(path, "expected an object with a \"files\" list") }
        var entries: [Entry] = []
        for (i, f) in files.enumerated() {
            guard let name = f["name"]?.string, let bytes = f["bytes"]?.int, bytes >= 0,
                  let sha = f["sha256"]?.string, sha.utf8.count == 64, let lines = f["lines"]?.int, lines >= 0,
                  let usesJSON = f["uses"]?.array
            else { throw FileError(path, "files[\(i)]: expected name, bytes, sha256 (64 hex digits), lines and uses") }
            var uses: [String] = []
            for u in usesJSON {
                guard let s = u.string else { throw FileError(path, "files[\(i)].uses must be a list of strings") }
                uses.append(s)
            }
            entries.append(Entry(name: name, bytes: bytes, sha256: sha.lowercased(), lines: lines, uses: uses))
        }
        self.entries = entries
    }

    /// Reads a manifest file.
    public static func load(path: String) throws(FileError) -> DatasetManifest {
        let file = try MappedFile(path: path)
        // The map must outlive every use of `file.bytes` (ARC may release `file` after its last use).
        defer { withExtendedLifetime(file) {} }
        let json: JSON
        do {
            json = try JSON.parse(file.bytes)
        } catch {
            throw FileError(path, "not valid JSON: \(error)")
        }
        return try DatasetManifest(json: json, path: path)
    }

    /// The entry whose relative name is a suffix of `path` on a component boundary, else the
    /// one with the same file name.
    public func entry(for path: String) -> Entry? {
        if let e = entries.first(where: { path == $0.name || path.hasSuffix("/" + $0.name) }) { return e }
        let fileName = path.split(separator: "/").last.map(String.init) ?? path
        return entries.first { $0.fileName == fileName }
    }

    /// Compares the file at `path` with its manifest entry (size first, then sha256). A file
    /// the manifest does not know is `.unknown`, not an error; a file that cannot be read is.
    public func check(path: String) throws(FileError) -> ManifestCheck {
        guard let e = entry(for: path) else { return .unknown(path: path) }
        let file = try MappedFile(path: path)
        // The map must outlive every use of `file.bytes` (ARC may release `file` after its last use).
        defer { withExtendedLifetime(file) {} }
        if file.count != e.bytes {
            return .mismatch(path: path, name: e.name, detail: "\(file.count) bytes, the original has \(e.bytes)")
        }
        let digest = SHA256.hex(file.bytes)
        if digest != e.sha256 {
            return .mismatch(path: path, name: e.name, detail: "sha256 \(digest.prefix(12))…, the original has \(e.sha256.prefix(12))…")
        }
        return .verified(path: path, name: e.name)
    }
}

/// The result of comparing one dataset file with the manifest.
public enum ManifestCheck: Equatable, Sendable {
    /// Same size and sha256 as the known file `name`.
    case verified(path: String, name: String)
    /// The manifest has no file of that name.
    case unknown(path: String)
    /// Named like the known file `name` but different: results will not be comparable with
    /// numbers computed on the original.
    case mismatch(path: String, name: String, detail: String)

    /// A one-line warning for `.mismatch`, nil otherwise.
    public var warning: String? {
        guard case .mismatch(let path, let name, let detail) = self else { return nil }
        return "\(path): differs from the known \(name) (\(detail)); results are not comparable with the original data"
    }
}
