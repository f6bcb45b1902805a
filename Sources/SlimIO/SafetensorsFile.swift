import Foundation

// MARK: - Single file

/// A memory-mapped, fully validated safetensors file.
///
/// `init` maps the file and validates the whole header against the data section before it
/// returns (see `SafetensorsHeader` for the rules), so every view handed out afterwards is in
/// bounds. Tensor data is not read until a view's bytes are touched; views are zero-copy and
/// retain this object (so the mapping outlives every view).
///
/// Views are not necessarily aligned to their element size (other writers may not pad the
/// header to 8 bytes): read elements with `loadUnaligned` or copy them.
public final class SafetensorsFile: TensorSource, @unchecked Sendable {
    public let path: String
    /// `__metadata__` pairs in file order; nil when the file has none.
    public let metadata: [(key: String, value: String)]?
    /// Tensor names in data-offset order.
    public let tensorNames: [String]
    /// Size of the whole file in bytes.
    public var fileSize: Int { file.count }

    private let file: MappedFile
    private let entries: [SafetensorsEntry]
    private let indexByName: [String: Int]
    private let dataStart: Int

    /// Maps and validates `path`.
    /// - Throws: `SafetensorsFileError` (with the specific `SafetensorsError` case) for a
    ///   malformed file, `FileError` when the file cannot be opened or mapped.
    public convenience init(path: String) throws {
        try self.init(file: try MappedFile(path: path))
    }

    /// Validates the bytes of `file` (named by `file.path` in errors): the one parsing path,
    /// for files on disk and for in-memory images (fuzzing, tests).
    /// - Throws: `SafetensorsFileError` for a malformed file.
    public init(file: MappedFile) throws {
        let path = file.path
        self.path = path
        self.file = file
        let header: SafetensorsHeader
        do {
            header = try SafetensorsHeader.parse(file.bytes)
        } catch {
            throw SafetensorsFileError(path: path, kind: error)
        }
        metadata = header.metadata
        entries = header.entries
        dataStart = header.dataStart
        tensorNames = header.entries.map(\.name)
        var index: [String: Int] = [:]
        index.reserveCapacity(entries.count)
        for (i, e) in entries.enumerated() { index[e.name] = i }
        indexByName = index
    }

    /// A zero-copy view of tensor `name`, or nil if the file has no such tensor.
    public func tensor(_ name: String) -> TensorView? {
        guard let i = indexByName[name] else { return nil }
        let e = entries[i]
        // In bounds: the header validation proved dataStart + end <= file size.
        let bytes = UnsafeRawBufferPointer(rebasing: file.bytes[(dataStart + e.begin)..<(dataStart + e.end)])
        return TensorView(name: e.name, dtype: e.dtype, shape: e.shape, bytes: bytes, owner: self)
    }

    /// Element type and shape of `name` from the header (no data touched), or nil.
    public func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])? {
        guard let i = indexByName[name] else { return nil }
        return (entries[i].dtype, entries[i].shape)
    }

    /// True if the file stores a tensor called `name`.
    public func contains(_ name: String) -> Bool { indexByName[name] != nil }
}

// MARK: - Checkpoint (single file or sharded)

/// A model's weights: either one `model.safetensors` or the shards listed by a Hugging Face
/// `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`).
///
/// Validation on open: every shard is a valid safetensors file; shard names in the index are
/// plain file names inside the directory (no path traversal); every `weight_map` entry exists
/// in its shard; every tensor stored in a shard is mapped to that shard; no tensor is stored in
/// two shards. Top-level index keys other than `metadata` and `weight_map` are ignored (they
/// carry no layout), as Hugging Face loaders do.
public final class SafetensorsCheckpoint: TensorSource, @unchecked Sendable {
    public static let singleFileName = "model.safetensors"
    public static let indexFileName = "model.safetensors.index.json"

    /// The shard files in order (one element for a single-file checkpoint).
    public let shards: [SafetensorsFile]
    /// The index's `metadata` object (for example `total_size`); nil without an index.
    public let indexMetadata: JSONObject?
    /// All tensor names: shard by shard, each in data-offset order.
    public let tensorNames: [String]

    private let shardByTensor: [String: Int]

    /// Opens the checkpoint in `directory`: `model.safetensors`, or
    /// `model.safetensors.index.json` plus the shards it names (in file-name order).
    /// - Throws: `SafetensorsFileError` with `.noCheckpoint` / `.ambiguousCheckpoint` (path:
    ///   the directory), index and shard errors (path: the index or shard file).
    public convenience init(directory: String) throws {
        let fm = FileManager.default
        let single = (directory as NSString).appendingPathComponent(Self.singleFileName)
        let index = (directory as NSString).appendingPathComponent(Self.indexFileName)
        let hasSingle = fm.fileExists(atPath: single)
        let hasIndex = fm.fileExists(atPath: index)
        switch (hasSingle, hasIndex) {
        case (true, true): throw SafetensorsFileError(path: directory, kind: .ambiguousCheckpoint)
        case (false, false): throw SafetensorsFileError(path: directory, kind: .noCheckpoint)
        case (true, false): try self.init(shards: [SafetensorsFile(path: single)], index: nil)
        case (false, true):
            let parsed = try Self.readIndex(path: index)
            var files: [SafetensorsFile] = []
            for name in parsed.shardNames {
                let shardPath = (directory as NSString).appendingPathComponent(name)
                guard fm.fileExists(atPath: shardPath) else {
                    throw SafetensorsFileError(path: index, kind: .missingShard(name))
                }
                files.append(try SafetensorsFile(path: shardPath))
            }
            try self.init(shards: files, index: (path: index, parsed: parsed))
        }
    }

    /// Combines explicit shard files (no index): tensor names must be unique across them.
    public convenience init(files: [String]) throws {
        guard !files.isEmpty else { throw SafetensorsFileError(path: "(no files)", kind: .noCheckpoint) }
        try self.init(shards: files.map { try SafetensorsFile(path: $0) }, index: nil)
    }

    private init(shards: [SafetensorsFile], index: (path: String, parsed: ParsedIndex)?) throws {
        var shardByTensor: [String: Int] = [:]
        var names: [String] = []
        for (s, shard) in shards.enumerated() {
            for name in shard.tensorNames {
                if let other = shardByTensor.updateValue(s, forKey: name) {
                    throw SafetensorsFileError(
                        path: shard.path,
                        kind: .duplicateTensor(tensor: name, firstShard: Self.fileName(shards[other].path),
                                               secondShard: Self.fileName(shard.path)))
                }
                names.append(name)
            }
        }
        if let (indexPath, parsed) = index {
            var shardIndexByName: [String: Int] = [:]
            for (i, shard) in shards.enumerated() { shardIndexByName[Self.fileName(shard.path)] = i }
            for (tensor, shardName) in parsed.weightMap {
                guard let s = shardIndexByName[shardName], shards[s].contains(tensor) else {
                    throw SafetensorsFileError(path: indexPath, kind: .tensorNotInShard(tensor: tensor, shard: shardName))
                }
            }
            let mapped = Dictionary(parsed.weightMap, uniquingKeysWith: { a, _ in a })
            for shard in shards {
                let shardName = Self.fileName(shard.path)
                for name in shard.tensorNames where mapped[name] != shardName {
                    throw SafetensorsFileError(path: indexPath, kind: .unlistedTensor(tensor: name, shard: shardName))
                }
            }
        }
        self.shards = shards
        self.indexMetadata = index?.parsed.metadata
        self.tensorNames = names
        self.shardByTensor = shardByTensor
    }

    /// A zero-copy view of tensor `name` from whichever shard stores it (the view retains
    /// that shard), or nil.
    public func tensor(_ name: String) -> TensorView? {
        guard let s = shardByTensor[name] else { return nil }
        return shards[s].tensor(name)
    }

    /// Element type and shape of `name` from its shard's header, or nil.
    public func tensorInfo(_ name: String) -> (dtype: DType, shape: [Int])? {
        guard let s = shardByTensor[name] else { return nil }
        return shards[s].tensorInfo(name)
    }

    /// The shard file that stores `name`, or nil.
    public func shard(containing name: String) -> SafetensorsFile? {
        shardByTensor[name].map { shards[$0] }
    }

    // MARK: Index

    private struct ParsedIndex {
        var metadata: JSONObject?
        /// (tensor, shard file name) in index order.
        var weightMap: [(String, String)]
        /// Distinct shard names, sorted by their bytes (HF numbering sorts naturally).
        var shardNames: [String]
    }

    private static func readIndex(path: String) throws -> ParsedIndex {
        func fail(_ kind: SafetensorsError) -> SafetensorsFileError { SafetensorsFileError(path: path, kind: kind) }
        let file = try MappedFile(path: path)
        let json: JSON
        do {
            json = try file.withBytes { bytes throws(JSONError) in try JSON.parse(bytes) }
        } catch {
            throw fail(.invalidIndex("not valid JSON: \(error.description)"))
        }
        guard case .object(let root) = json else { throw fail(.invalidIndex("top level is not an object")) }
        var metadata: JSONObject? = nil
        if let m = root["metadata"] {
            guard case .object(let o) = m else { throw fail(.invalidIndex("\"metadata\" is not an object")) }
            metadata = o
        }
        guard let wm = root["weight_map"] else { throw fail(.invalidIndex("missing \"weight_map\"")) }
        guard case .object(let map) = wm else { throw fail(.invalidIndex("\"weight_map\" is not an object")) }
        var weightMap: [(String, String)] = []
        var seen = Set<String>()
        var shardNames: [String] = []
        for (tensor, value) in map.pairs {
            guard case .string(let shard) = value else {
                throw fail(.invalidIndex("weight_map entry \"\(tensor)\" is not a file name string"))
            }
            guard isPlainFileName(shard) else { throw fail(.invalidShardName(shard)) }
            weightMap.append((tensor, shard))
            if seen.insert(shard).inserted { shardNames.append(shard) }
        }
        guard !weightMap.isEmpty else { throw fail(.invalidIndex("\"weight_map\" is empty")) }
        shardNames.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        return ParsedIndex(metadata: metadata, weightMap: weightMap, shardNames: shardNames)
    }

    /// A name that stays inside its directory: non-empty, not `.`/`..`, no `/`, `\` or NUL.
    static func isPlainFileName(_ name: String) -> Bool {
        guard !name.isEmpty, name != ".", name != ".." else { return false }
        return !name.utf8.contains { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "\\") || $0 == 0 }
    }

    private static func fileName(_ path: String) -> String { (path as NSString).lastPathComponent }
}
