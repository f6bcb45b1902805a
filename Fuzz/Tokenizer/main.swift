// libFuzzer harness: tokenizer.json loading (SlimIO's JSON parser, then the tokenizers
// pipeline: model, normalizer, pre-tokenizers, added tokens, post-processor, decoder), exactly
// as `Tokenizer(tokenizerJSONPath:)` does after reading the file; an accepted tokenizer encodes
// and decodes a fixed text. Built and run by scripts/fuzz.sh.
import SlimIO
import SlimTokenizer

let sample = "Once upon a time, there was a  little  cat.\n\t12345 ünïcödé 😀 <s> </s> <|endoftext|> don't"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let json = try? JSON.parse(bytes) else { return 0 }
    guard let tokenizer = try? Tokenizer(json: json, path: "fuzz/tokenizer.json") else { return 0 }
    exercise(tokenizer, sample: sample)
    return 0
}
