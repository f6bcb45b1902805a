/// An error from the work itself (not from the command line): names the file and what is
/// wrong with it. The CLI prints `description` on one line and exits 1.
public struct FileError: Error, CustomStringConvertible, Equatable, Sendable {
    public let path: String
    public let message: String

    public init(_ path: String, _ message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}
