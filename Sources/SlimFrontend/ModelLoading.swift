import Foundation
import SlimIO
import SlimModel
import SlimTokenizer

/// The tokenizer of whatever the user pointed at: a GGUF file (embedded vocabulary), a model
/// directory, or a tokenizer-only directory (no config.json, no weights needed).
func loadTokenizer(_ path: String, preferJSON: Bool) throws -> Tokenizer {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw FileError(path, "no such file or directory")
    }
    if isDir.boolValue { return try Tokenizer.load(directory: path, preferJSON: preferJSON) }
    return try LoadedModel(path: path).tokenizer(preferJSON: preferJSON)
}
