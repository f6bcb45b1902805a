import Foundation
import SlimIO
import SlimModel
import SlimData
import SlimTokenizer

/// `slim-quant tokenize`: encode text with a model's tokenizer and print ids and pieces.
struct TokenizeCommand: SlimCommand {
    static let configuration = CommandConfiguration(
        name: "tokenize",
        abstract: "Encode text with a model's tokenizer and print the token ids.",
        usage: "--model <dir|file.gguf> (--text <string> | --file <path> | --dataset <name>) [options]",
        discussion: """
            Uses tokenizer.json, or the SentencePiece tokenizer.model when the model has one (that is
            what LLaMA-1/2 reference code uses); --prefer-json forces tokenizer.json. A GGUF file's
            embedded vocabulary is used for .gguf models. The BOS token is added when the tokenizer
            is configured to add it, unless --no-special-tokens is given.
            Timing (characters, tokens, seconds) is printed on stderr.
            """,
        examples: [
            "slim-quant tokenize --model ../shared/models/stories260K --text 'Once upon a time'",
            "slim-quant tokenize --model ../shared/models/llama2-tokenizer --dataset wikitext2 --ids-only > ids.txt",
            "slim-quant tokenize --model model.gguf --text 'Hello world' --json",
        ],
        options: [
            .option("model", short: "m", value: "<dir|file.gguf>", help: "Model directory (or a tokenizer-only directory) or a GGUF file."),
            .option("text", short: "t", value: "<string>", help: "Text to encode."),
            .option("file", short: "f", value: "<path>", help: "UTF-8 text file to encode."),
            .option("dataset", value: "<wikitext2|ptb|c4>", help: "Encode a dataset's text, joined as the evaluation protocol does."),
            .option("split", value: "<train|validation|test>", help: "Dataset split (default: the protocol's: test, C4 validation)."),
            .option("data-dir", value: "<dir>", help: "Dataset directory (default: $SLIM_DATA_DIR, else ../shared/data)."),
            .flag("json", help: "Print a JSON object {count, ids, tokens} instead of a table."),
            .flag("ids-only", help: "Print only the ids, space-separated, on one line."),
            .flag("no-special-tokens", help: "Do not add BOS/EOS or other template tokens."),
            .flag("prefer-json", help: "Use tokenizer.json even when a tokenizer.model is present."),
        ])

    let model: String
    let text: String?
    let file: String?
    let dataset: DatasetName?
    let split: Split?
    let dataDir: String?
    let json: Bool
    let idsOnly: Bool
    let addSpecial: Bool
    let preferJSON: Bool

    init(_ args: ParsedArguments) throws(UsageError) {
        model = try args.required("model", "<dir|file.gguf>")
        text = args.string("text")
        file = args.string("file")
        dataset = args.isSet("dataset") ? try args.choice("dataset", default: DatasetName.wikitext2) : nil
        split = args.isSet("split") ? try args.choice("split", default: Split.test) : nil
        dataDir = args.string("data-dir")
        json = args.has("json")
        idsOnly = args.has("ids-only")
        addSpecial = !args.has("no-special-tokens")
        preferJSON = args.has("prefer-json")
    }

    func validate() throws(UsageError) {
        if [text != nil, file != nil, dataset != nil].filter({ $0 }).count != 1 {
            throw UsageError("give exactly one of '--text <string>', '--file <path>' or '--dataset <name>'")
        }
        if dataset == nil && (split != nil || dataDir != nil) {
            throw UsageError("'--split' and '--data-dir' apply only with '--dataset'")
        }
        if json && idsOnly { throw UsageError("'--json' and '--ids-only' cannot be combined") }
    }

    func run(console: Console) throws {
        let tokenizer = try loadTokenizer(model, preferJSON: preferJSON)
        let input: String
        if let text {
            input = text
        } else if let file {
            input = try loadTextFile(path: file)
        } else {
            let data = try DatasetLocator(dataDir: dataDir).text(dataset!, split: split ?? dataset!.defaultSplit(for: .eval), protocol: .eval)
            for w in data.warnings { console.log("warning: \(w)") }
            console.log("dataset: \(data.label) (\(data.source.joined(separator: ", ")))")
            input = data.text
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let ids = tokenizer.encode(input, addSpecialTokens: addSpecial)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        console.log(String(format: "%@: %d characters -> %d tokens in %.3f s (%.0f tokens/s)",
                           tokenizer.kindDescription, input.unicodeScalars.count, ids.count, seconds,
                           Double(ids.count) / max(seconds, 1e-9)))
        if idsOnly {
            console.print(ids.map(String.init).joined(separator: " "))
        } else if json {
            let obj: JSON = [
                "count": .int(Int64(ids.count)),
                "ids": .array(ids.map { .int(Int64($0)) }),
                "tokens": .array(ids.map { .string(tokenizer.piece($0) ?? "") }),
            ]
            console.print(obj.serialized())
        } else {
            let width = String(ids.max() ?? 0).count
            for id in ids {
                let idText = String(id)
                console.print(String(repeating: " ", count: max(0, width - idText.count)) + idText + "  "
                              + visible(tokenizer.piece(id) ?? "<?>"))
            }
        }
    }

    /// Makes control characters in a piece visible so one token stays on one line.
    private func visible(_ piece: String) -> String {
        var s = ""
        for u in piece.unicodeScalars {
            switch u {
            case "\n": s += "\\n"
            case "\t": s += "\\t"
            case "\r": s += "\\r"
            default: s.unicodeScalars.append(u)
            }
        }
        return s
    }
}
