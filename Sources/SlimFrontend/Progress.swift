import Foundation

/// A one-line progress bar on stderr with rate and ETA, redrawn in place when stderr is a
/// terminal and printed as plain periodic lines otherwise (CI logs, files).
final class ProgressBar {
    private let console: Console
    private let label: String
    private let total: Int
    private let start = DispatchTime.now().uptimeNanoseconds
    private let interactive: Bool
    private var lastPlainLine = 0.0

    init(console: Console, label: String, total: Int) {
        self.console = console
        self.label = label
        self.total = max(total, 1)
        interactive = isatty(STDERR_FILENO) == 1
    }

    var elapsed: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    /// Reports `done` of `total` units; `detail` is appended (e.g. "ppl 12.34").
    func update(_ done: Int, detail: String = "") {
        let t = elapsed
        let fraction = Double(done) / Double(total)
        let eta = done > 0 ? t / Double(done) * Double(total - done) : .nan
        let width = 24
        let filled = min(width, Int(fraction * Double(width)))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = "\(label) [\(bar)] \(done)/\(total) \(detail)  elapsed \(Self.duration(t))  ETA \(Self.duration(eta))"
        if interactive {
            console.logPartial("\r\u{1B}[K" + line + (done >= total ? "\n" : ""))
        } else if done >= total || t - lastPlainLine >= 10 || done == 1 {
            lastPlainLine = t
            console.log(line)
        }
    }

    /// "1h02m", "3m05s", "12.3s", "--" for unknown.
    static func duration(_ s: Double) -> String {
        guard s.isFinite, s >= 0 else { return "--" }
        if s >= 3600 { return String(format: "%dh%02dm", Int(s) / 3600, (Int(s) % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", Int(s) / 60, Int(s) % 60) }
        return String(format: "%.1fs", s)
    }
}
