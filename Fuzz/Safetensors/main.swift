// libFuzzer harness: the safetensors reader (header framing, JSON, entries, data layout) on
// arbitrary bytes, through the same `SafetensorsFile(file:)` that `SafetensorsFile(path:)` uses.
// Every tensor the reader accepts is then read in full, so a view outside the buffer is an
// AddressSanitizer report. Built and run by scripts/fuzz.sh.
import SlimIO

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let file = MappedFile(copying: UnsafeRawBufferPointer(start: data, count: size), path: "fuzz.safetensors")
    guard let st = try? SafetensorsFile(file: file) else { return 0 }
    var checksum: UInt8 = 0
    for name in st.tensorNames {
        guard let view = st.tensor(name), let info = st.tensorInfo(name) else { fatalError("listed tensor \(name) has no view") }
        precondition(info.shape == view.shape && info.dtype == view.dtype)
        precondition(view.bytes.count == view.shape.reduce(view.dtype.byteSize, *), "view size disagrees with its shape")
        view.withBytes { bytes in for b in bytes { checksum &+= b } }
    }
    _ = st.metadata
    blackHole(checksum)
    return 0
}
