import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// A run killed (SIGKILL, power loss, OOM killer) while writing its output leaves the staging
// directory `.<name>.partial-<pid>` beside the output, and one killed between the two renames
// of the swap leaves the previous output as `.<name>.old-<pid>`. The output path itself is never
// half-written; these leftovers are removed by the next run that writes the same output.

enum StaleStaging {
    /// Removes `.<name>.partial-<pid>` and `.<name>.old-<pid>` entries of `parent` whose process
    /// is gone. An `.old-` directory is kept while `<name>` itself is missing: it is then the only
    /// copy of the previous output (the run was killed between moving it aside and moving the new
    /// one in), and the next successful run replaces it.
    static func clean(parent: String, name: String) {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: parent) else { return }
        let outputExists = fm.fileExists(atPath: (parent as NSString).appendingPathComponent(name))
        for entry in entries {
            for kind in ["partial", "old"] {
                let prefix = ".\(name).\(kind)-"
                guard entry.hasPrefix(prefix), let pid = Int32(entry.dropFirst(prefix.count)), !isAlive(pid) else { continue }
                if kind == "old" && !outputExists { continue }
                try? fm.removeItem(atPath: (parent as NSString).appendingPathComponent(entry))
            }
        }
    }

    /// False only when no process `pid` exists (a process of another user still counts as alive).
    static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0, pid != getpid() else { return pid == getpid() }
        return kill(pid, 0) == 0 || errno != ESRCH
    }
}
