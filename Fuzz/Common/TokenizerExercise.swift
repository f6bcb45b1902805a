// Shared by the tokenizer harnesses (tokenizer, sentencepiece; compiled in by scripts/fuzz.sh).
import SlimTokenizer

/// Encodes and decodes a fixed text that touches whitespace runs, digits, non-ASCII, an emoji and
/// special-token spellings, and looks up pieces in and out of range: what a command does with a
/// tokenizer it accepted.
func exercise(_ tokenizer: Tokenizer, sample: String) {
    let ids = tokenizer.encode(sample)
    let plain = tokenizer.encode(sample, addSpecialTokens: false)
    blackHole(tokenizer.decode(ids))
    blackHole(tokenizer.decode(plain, skipSpecialTokens: true))
    for id in ids.prefix(8) { blackHole(tokenizer.piece(id)) }
    blackHole(tokenizer.piece(-1))
    blackHole(tokenizer.piece(Int(Int32.max)))
}
