// libFuzzer harness: SentencePiece tokenizer.model loading (the protocol-buffers reader, the
// ModelProto walk, the precompiled character map, the vocabulary tries), exactly as
// `Tokenizer(sentencePieceModelPath:)` does after mapping the file; an accepted tokenizer encodes
// and decodes a fixed text. Built and run by scripts/fuzz.sh.
import SlimTokenizer

let sample = "Once upon a time, there was a  little  cat.\n\t12345 ünïcödé 😀 <s> </s> ▁▁ don't"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let tokenizer = try? Tokenizer(sentencePieceModel: bytes, path: "fuzz/tokenizer.model") else { return 0 }
    exercise(tokenizer, sample: sample)
    return 0
}
