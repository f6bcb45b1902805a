import Foundation
import SlimIO
import SlimKernels
import SlimRuntime

// The calibration activations between decoder layers: N windows × L tokens × hidden values, the
// pipeline's largest buffer (SmolLM2-135M, 128 × 2048: 604 MB in fp32; LLaMA-7B: 4.3 GB).

/// How the inter-layer activations are held in memory and in the work directory.
public enum ActivationStorage: String, CaseIterable, Sendable {
    /// fp32: exactly what the fp32 runtime produced.
    case f32
    /// IEEE half (round to nearest even): half the memory, one extra rounding of the residual
    /// stream per layer (the reference keeps them in the model dtype, fp16 for LLaMA-1/2).
    /// A value beyond ±65504 is an error (it would become infinite), not silently clipped.
    case f16

    var dtype: DType { self == .f32 ? .f32 : .f16 }
    var byteSize: Int { self == .f32 ? 4 : 2 }
}

/// N windows of `rows × cols` activations in one allocation.
final class ActivationStore {
    let samples: Int
    let rows: Int
    let cols: Int
    let storage: ActivationStorage
    /// Elements per window (rows × cols).
    let windowElements: Int
    private let bytes: UnsafeMutableRawBufferPointer

    /// - Throws: `QuantError`-style `RuntimeError` when the size overflows.
    init(samples: Int, rows: Int, cols: Int, storage: ActivationStorage) throws {
        guard samples >= 0, rows >= 0, cols >= 0 else {
            throw RuntimeError("activation buffer: negative size \(samples)×\(rows)×\(cols)")
        }
        let (window, o1) = rows.multipliedReportingOverflow(by: cols)
        let (elements, o2) = window.multipliedReportingOverflow(by: samples)
        let (byteCount, o3) = elements.multipliedReportingOverflow(by: storage.byteSize)
        guard !o1, !o2, !o3 else {
            throw RuntimeError("activation buffer of \(samples)×\(rows)×\(cols) values overflows")
        }
        self.samples = samples
        self.rows = rows
        self.cols = cols
        self.storage = storage
        windowElements = window
        bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: max(byteCount, 1), alignment: 64)
    }

    deinit { bytes.deallocate() }

    /// Bytes held (N·L·hidden·element size).
    var byteCount: Int { samples * windowElements * storage.byteSize }

    /// The raw storage (little-endian elements, window-major).
    var rawBytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: bytes.baseAddress, count: byteCount) }

    // MARK: Windows

    /// Copies window `sample` into `hidden` (whose shape must be rows × cols).
    func load(_ sample: Int, into hidden: inout HiddenStates) {
        precondition(sample >= 0 && sample < samples && hidden.rows == rows && hidden.cols == cols,
                     "ActivationStore.load: window \(sample) or shape \(hidden.rows)×\(hidden.cols) out of range")
        let n = windowElements
        let source = bytes.baseAddress! + sample * n * storage.byteSize
        hidden.values.withUnsafeMutableBufferPointer { out in
            guard let dst = out.baseAddress, n > 0 else { return }
            switch storage {
            case .f32: dst.update(from: source.assumingMemoryBound(to: Float.self), count: n)
            case .f16: Kernels.convertF16ToF32(source.assumingMemoryBound(to: UInt16.self), dst, count: n)
            }
        }
    }

    /// Stores `hidden` as window `sample`; `what` names the values in errors ("layer 3 output").
    /// - Throws: `RuntimeError` when an fp16 store would overflow (|x| > 65504) or a value is
    ///   not finite (a diverging model: continuing would quantize garbage).
    func store(_ sample: Int, from hidden: HiddenStates, what: String) throws {
        precondition(sample >= 0 && sample < samples && hidden.rows == rows && hidden.cols == cols,
                     "ActivationStore.store: window \(sample) or shape \(hidden.rows)×\(hidden.cols) out of range")
        let n = windowElements
        let target = bytes.baseAddress! + sample * n * storage.byteSize
        try hidden.values.withUnsafeBufferPointer { input in
            guard let src = input.baseAddress, n > 0 else { return }
            switch storage {
            case .f32:
                if let bad = Self.firstNonFinite(src, count: n) {
                    throw RuntimeError("\(what) has a non-finite value (\(src[bad])) in calibration window \(sample), "
                        + "row \(bad / cols): the model diverges on this input")
                }
                target.assumingMemoryBound(to: Float.self).update(from: src, count: n)
            case .f16:
                let halves = target.assumingMemoryBound(to: UInt16.self)
                Kernels.convertF32ToF16(src, halves, count: n)
                if let bad = Self.firstInfiniteHalf(halves, count: n) {
                    throw RuntimeError("\(what) value \(src[bad]) in calibration window \(sample) does not fit in fp16 "
                        + "(|x| ≤ 65504): rerun with --activations f32")
                }
            }
        }
    }

    /// Index of the first NaN/Inf, or nil (8-wide, so it stays cheap in unoptimized builds).
    static func firstNonFinite(_ x: UnsafePointer<Float>, count: Int) -> Int? {
        var i = 0
        let raw = UnsafeRawPointer(x)
        while i + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<UInt32>.self)
            if any(v & 0x7F80_0000 .== 0x7F80_0000) { break }
            i += 8
        }
        while i < count {
            if !x[i].isFinite { return i }
            i += 1
        }
        return nil
    }

    /// Index of the first ±Inf or NaN half, or nil.
    static func firstInfiniteHalf(_ h: UnsafePointer<UInt16>, count: Int) -> Int? {
        var i = 0
        let raw = UnsafeRawPointer(h)
        while i + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<UInt16>.self)
            if any(v & 0x7C00 .== 0x7C00) { break }
            i += 8
        }
        while i < count {
            if h[i] & 0x7C00 == 0x7C00 { return i }
            i += 1
        }
        return nil
    }

    // MARK: Files

    static let formatName = "slim-quant-activations"
    static let tensorName = "activations"

    /// Atomically writes the activations as a safetensors file with one `[N, L, hidden]`
    /// tensor; `layer` (the decoder layer these are the inputs of) goes into the metadata.
    func write(to path: String, layer: Int) throws {
        let tensor = SafetensorsStream.tensor(name: Self.tensorName, dtype: storage.dtype,
                                              shape: [samples, rows, cols], bytes: rawBytes)
        try SafetensorsStream.write(to: path, tensors: [tensor],
                                    metadata: [("format", Self.formatName), ("layer", String(layer))])
    }

    /// Reads a file written by `write`, checking that it holds the inputs of `layer` with the
    /// expected shape and storage.
    /// - Throws: `FileError` naming `path` on any mismatch or a damaged file.
    static func read(path: String, layer: Int, samples: Int, rows: Int, cols: Int,
                     storage: ActivationStorage) throws -> ActivationStore {
        let file = try SafetensorsFile(path: path)
        let meta = Dictionary(file.metadata ?? [], uniquingKeysWith: { a, _ in a })
        guard meta["format"] == formatName else { throw FileError(path, "not a slim-quant activation file") }
        guard meta["layer"] == String(layer) else {
            throw FileError(path, "holds the inputs of layer \(meta["layer"] ?? "?"), expected layer \(layer)")
        }
        guard let view = file.tensor(tensorName), view.dtype == storage.dtype, view.shape == [samples, rows, cols] else {
            throw FileError(path, "activation tensor is not \(storage.dtype.rawValue) [\(samples), \(rows), \(cols)]")
        }
        let store = try ActivationStore(samples: samples, rows: rows, cols: cols, storage: storage)
        guard view.bytes.count == store.byteCount else {
            throw FileError(path, "activation tensor has \(view.bytes.count) bytes, expected \(store.byteCount)")
        }
        view.withBytes { src in
            if let base = src.baseAddress, src.count > 0 {
                store.bytes.baseAddress!.copyMemory(from: base, byteCount: src.count)
            }
        }
        return store
    }
}
