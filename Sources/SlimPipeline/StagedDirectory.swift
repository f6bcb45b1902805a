import Foundation
import SlimIO

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A model directory assembled beside its destination and renamed into place, so the output path
// never holds a half-written model (docs/ERRORS.md, "Disk state after a failure"). Used by
// `quantize` (CheckpointOutput) and `convert --dequantize` (PackedDequantizer).

/// The staging directory `.<name>.partial-<pid>` of one output being written.
struct StagedDirectory {
    /// The output path as the caller gave it (for error messages).
    let output: String
    /// The staging directory.
    let path: String

    /// The path of `name` inside the staging directory.
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    /// Writes a model directory to `output`:
    /// 1. removes leftovers of dead runs writing the same output (`StaleStaging`);
    /// 2. creates `.<name>.partial-<pid>` in the output's parent (same filesystem);
    /// 3. `contents` writes every file but config.json into it (each file with `AtomicFile` or
    ///    `SafetensorsStream`, which fsync it) and returns config.json's object, which is written
    ///    last: it marks a complete model;
    /// 4. swaps it into place: an existing output (the caller has checked that it may be
    ///    replaced) is renamed aside to `.<name>.old-<pid>`, the staging directory is renamed to
    ///    `output`, then the old one is deleted; if the second rename fails, the old one is moved
    ///    back. `output` is always either the old or the new directory, never a mix.
    /// On any error the staging directory is removed and `output` is left as it was.
    /// - Throws: `FileError`, or whatever `contents` throws.
    static func write(to output: String, contents: (StagedDirectory) throws -> JSONObject) throws {
        let fm = FileManager.default
        let destination = RunManifest.absolute(output)
        let parent = (destination as NSString).deletingLastPathComponent
        let name = (destination as NSString).lastPathComponent
        StaleStaging.clean(parent: parent, name: name)
        let staging = StagedDirectory(output: output,
                                      path: (parent as NSString).appendingPathComponent(".\(name).partial-\(getpid())"))
        try? fm.removeItem(atPath: staging.path)
        do { try fm.createDirectory(atPath: staging.path, withIntermediateDirectories: false) } catch {
            throw FileError(staging.path, "cannot create the staging directory: \(error.localizedDescription)")
        }
        var committed = false
        defer { if !committed { try? fm.removeItem(atPath: staging.path) } }

        let config = try contents(staging)
        try AtomicFile.write(text: JSON.object(config).serialized(pretty: true) + "\n", to: staging.file("config.json"))

        var oldAside: String?
        if fm.fileExists(atPath: destination) {
            let aside = (parent as NSString).appendingPathComponent(".\(name).old-\(getpid())")
            try? fm.removeItem(atPath: aside)
            guard rename(destination, aside) == 0 else {
                throw FileError(output, "cannot move the previous output aside: \(String(cString: strerror(errno)))")
            }
            oldAside = aside
        }
        guard rename(staging.path, destination) == 0 else {
            let reason = String(cString: strerror(errno))
            if let oldAside { _ = rename(oldAside, destination) }
            throw FileError(output, "cannot move the new checkpoint into place: \(reason)")
        }
        committed = true
        if let oldAside { try? fm.removeItem(atPath: oldAside) }
    }
}
