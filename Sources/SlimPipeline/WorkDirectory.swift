import Foundation
import SlimIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The resume state of a run. After each finished decoder layer it holds everything needed to
// continue as if never stopped, each file written atomically:
//
//   manifest.json              the run's parameters (RunManifest), written once
//   layer-00000.safetensors    the quantized linears of each finished layer (packed tensors,
//                              or F16 fake-quantized weights with --format fake-quant)
//   inputs-00003.safetensors   the calibration activations entering the next layer
//   state.json                 next layer, allocation and module reports so far (commit point)
//   lock                       flock(2)ed while a process uses the directory
//
// A layer is committed by writing its weights and the next inputs first and state.json last, so
// a crash at any moment leaves either the previous or the new state, both consistent. The
// previous inputs file is deleted only after state.json moved on.

/// Progress of a run, as stored in state.json.
struct WorkState: Equatable {
    /// The first layer not yet committed.
    var nextLayer = 0
    /// Bits per group of each committed layer (AllocationFile.layers).
    var allocation: [[String: [Int]]] = []
    /// Reports of the committed modules.
    var modules: [ModuleReport] = []
    /// The activations file for `nextLayer` (nil for RTN or when all layers are done).
    var inputsFile: String?

    func toJSON() -> JSON {
        .object([
            "next_layer": .int(Int64(nextLayer)),
            "inputs": inputsFile.map { .string($0) } ?? .null,
            "allocation": .array(allocation.map { layer in
                .object(JSONObject(AllocationFile.orderedKeys(layer).map { ($0, JSON.array(layer[$0]!.map { .int(Int64($0)) })) }))
            }),
            "modules": .array(modules.map { $0.toJSON() }),
        ])
    }

    init() {}

    init(json: JSON, path: String) throws {
        guard let next = json["next_layer"]?.int, next >= 0 else { throw FileError(path, "\"next_layer\" must be a non-negative integer") }
        nextLayer = next
        inputsFile = json["inputs"]?.string
        guard let layers = json["allocation"]?.array, layers.count == next else {
            throw FileError(path, "\"allocation\" must list the \(next) finished layers")
        }
        allocation = try layers.enumerated().map { (l, layer) in
            try AllocationFile.intArrays(layer, name: "allocation[\(l)]", path: path)
        }
        guard let modules = json["modules"]?.array else { throw FileError(path, "\"modules\" must be an array") }
        self.modules = try modules.map { m in
            guard let report = ModuleReport(json: m) else { throw FileError(path, "malformed module report \(m.serialized())") }
            return report
        }
    }
}

final class WorkDirectory {
    let path: String
    private(set) var state: WorkState
    /// The locked `lock` file (closed, and so unlocked, at deinit).
    private let lockDescriptor: Int32

    static let manifestName = "manifest.json"
    static let stateName = "state.json"
    static let lockName = "lock"

    private init(path: String, state: WorkState, lockDescriptor: Int32) {
        self.path = path
        self.state = state
        self.lockDescriptor = lockDescriptor
    }

    deinit { close(lockDescriptor) }

    /// Locks `<path>/lock` (created if needed) so two runs never share a work directory.
    /// - Throws: `FileError` when another process holds it or it cannot be opened.
    static func lock(_ path: String) throws -> Int32 {
        let lockPath = (path as NSString).appendingPathComponent(lockName)
        let fd = openLockFile(lockPath)
        guard fd >= 0 else { throw FileError(lockPath, "cannot open: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw FileError(path, "is in use by another slim-quant quantize process")
        }
        return fd
    }

    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    static func layerFileName(_ layer: Int) -> String { String(format: "layer-%05d.safetensors", layer) }
    static func inputsFileName(_ layer: Int) -> String { String(format: "inputs-%05d.safetensors", layer) }

    // MARK: Opening

    /// Opens the work directory for `manifest`:
    /// - absent or empty: created, manifest written, fresh state;
    /// - holding a run with the same manifest and `resume`: its state is loaded;
    /// - holding a run and `!resume`: that run is deleted and a fresh one begins;
    /// - holding a run with other parameters and `resume`: an error naming the differences.
    /// A directory that exists but is not a slim-quant work directory is never deleted.
    static func open(path: String, manifest: RunManifest, resume: Bool) throws -> WorkDirectory {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw FileError(path, "work directory path exists and is not a directory") }
            // Temporary files of a killed write (AtomicFile's ".<name>.tmp-<pid>-<n>") do not make
            // a directory a work directory: a run killed while writing its manifest restarts.
            let entries = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).filter { $0 != lockName && !isTemporary($0) }
            if !entries.isEmpty {
                let manifestPath = (path as NSString).appendingPathComponent(manifestName)
                guard let stored = try? readJSON(manifestPath).flatMap(RunManifest.init(json:)) else {
                    throw FileError(path, "exists and is not a slim-quant work directory (no valid \(manifestName)); "
                        + "remove it or choose another --work-dir")
                }
                // Locked before anything is read or deleted: the directory may be in use.
                let fd = try lock(path)
                if resume {
                    do {
                        let diffs = stored.differences(from: manifest)
                        guard diffs.isEmpty else {
                            throw FileError(path, "holds an interrupted run with different parameters (\(diffs.joined(separator: "; "))): "
                                + "rerun with the same options to resume, or pass --no-resume to start over")
                        }
                        let statePath = (path as NSString).appendingPathComponent(stateName)
                        let state = fm.fileExists(atPath: statePath)
                            ? try WorkState(json: try readJSON(statePath) ?? .null, path: statePath) : WorkState()
                        try checkFiles(in: path, state: state)
                        return WorkDirectory(path: path, state: state, lockDescriptor: fd)
                    } catch {
                        close(fd)
                        throw error
                    }
                }
                defer { close(fd) }
                do { try fm.removeItem(atPath: path) } catch {
                    throw FileError(path, "cannot remove the previous work directory: \(error.localizedDescription)")
                }
            }
        }
        do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
            throw FileError(path, "cannot create the work directory: \(error.localizedDescription)")
        }
        let dir = WorkDirectory(path: path, state: WorkState(), lockDescriptor: try lock(path))
        for name in (try? fm.contentsOfDirectory(atPath: path)) ?? [] where isTemporary(name) {
            try? fm.removeItem(atPath: dir.file(name))
        }
        try AtomicFile.write(text: manifest.toJSON().serialized(pretty: true) + "\n", to: dir.file(manifestName))
        return dir
    }

    /// AtomicFile's temporary names: ".<name>.tmp-<pid>-<n>".
    static func isTemporary(_ name: String) -> Bool { name.hasPrefix(".") && name.contains(".tmp-") }

    /// Checks that the files `state` refers to exist in `path`.
    private static func checkFiles(in path: String, state: WorkState) throws {
        var needed = (0..<state.nextLayer).map(layerFileName)
        if let inputs = state.inputsFile { needed.append(inputs) }
        for name in needed {
            let file = (path as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: file) else {
                throw FileError(file, "missing from the work directory; pass --no-resume to start over")
            }
        }
    }

    static func readJSON(_ path: String) throws -> JSON? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let mapped = try MappedFile(path: path)
        return try withExtendedLifetime(mapped) {
            do { return try JSON.parse(mapped.bytes) } catch { throw FileError(path, "\(error)") }
        }
    }

    // MARK: Committing

    /// Records layer `layer` as finished: its tensors, the inputs of the next layer (nil for
    /// RTN or after the last layer), its allocation and reports; state.json is written last.
    func commit(layer: Int, tensors streamed: [StreamedTensor], nextInputs: ActivationStore?, allocation: [String: [Int]],
                modules: [ModuleReport]) throws {
        precondition(layer == state.nextLayer, "WorkDirectory.commit: layer \(layer) while \(state.nextLayer) is next")
        try SafetensorsStream.write(to: file(Self.layerFileName(layer)), tensors: streamed, metadata: [("format", "pt")])
        var next = state
        next.nextLayer = layer + 1
        next.allocation.append(allocation)
        next.modules += modules
        next.inputsFile = nil
        if let nextInputs {
            let name = Self.inputsFileName(layer + 1)
            try nextInputs.write(to: file(name), layer: layer + 1)
            next.inputsFile = name
        }
        try AtomicFile.write(text: next.toJSON().serialized(pretty: true) + "\n", to: file(Self.stateName))
        let previous = state.inputsFile
        state = next
        if let previous, previous != next.inputsFile { try? FileManager.default.removeItem(atPath: file(previous)) }
    }

    /// The activations entering `state.nextLayer`.
    func loadInputs(samples: Int, rows: Int, cols: Int, storage: ActivationStorage) throws -> ActivationStore {
        guard let name = state.inputsFile else {
            throw FileError(file(Self.stateName), "no saved activations for layer \(state.nextLayer); pass --no-resume to start over")
        }
        return try ActivationStore.read(path: file(name), layer: state.nextLayer, samples: samples, rows: rows,
                                        cols: cols, storage: storage)
    }

    /// Deletes the work directory (after a successful run).
    func remove() throws {
        do { try FileManager.default.removeItem(atPath: path) } catch {
            throw FileError(path, "cannot remove the work directory: \(error.localizedDescription)")
        }
    }
}

/// open(2) for the lock file, outside `WorkDirectory` whose `open` shadows the C function.
private func openLockFile(_ path: String) -> Int32 {
    open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o644)
}
