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
    let ids = tokenizer.encode(sample)
    let plain = tokenizer.encode(sample, addSpecialTokens: false)
    blackHole(tokenizer.decode(ids))
    blackHole(tokenizer.decode(plain, skipSpecialTokens: true))
    for id in ids.prefix(8) { blackHole(tokenizer.piece(id)) }
    blackHole(tokenizer.piece(-1))
    blackHole(tokenizer.piece(Int(Int32.max)))
    return 0
}

@inline(never) func blackHole<T>(_ x: T) { withExtendedLifetime(x) {} }
