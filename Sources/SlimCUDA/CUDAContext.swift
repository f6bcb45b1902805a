// A CUDA device context and typed device buffers.

import CSlimCUDA

/// What the device reports about itself.
public struct CUDADeviceInfo: Sendable, Equatable {
    public let name: String
    public let computeCapability: (major: Int, minor: Int)
    public let multiprocessors: Int
    public let totalMemory: Int
    /// Bytes of L2 cache: a matrix smaller than this, launched back to back, is read from L2.
    public let l2CacheBytes: Int
    /// CUDA versions as the runtime encodes them (13000 = 13.0).
    public let driverVersion: Int
    public let runtimeVersion: Int

    public static func == (a: CUDADeviceInfo, b: CUDADeviceInfo) -> Bool {
        a.name == b.name && a.computeCapability == b.computeCapability && a.multiprocessors == b.multiprocessors
            && a.totalMemory == b.totalMemory && a.l2CacheBytes == b.l2CacheBytes && a.driverVersion == b.driverVersion && a.runtimeVersion == b.runtimeVersion
    }

    /// "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB, 50 MiB L2, driver CUDA 13.0, runtime 13.5)".
    public var summary: String {
        func version(_ v: Int) -> String { "\(v / 1000).\(v % 1000 / 10)" }
        return "\(name) (sm_\(computeCapability.major)\(computeCapability.minor), \(multiprocessors) SMs, "
            + String(format: "%.1f GiB, %d MiB L2", Double(totalMemory) / Double(1 << 30), l2CacheBytes >> 20)
            + ", driver CUDA \(version(driverVersion)), runtime \(version(runtimeVersion)))"
    }
}

/// One GPU and the stream everything runs on. Objects created from it (buffers, linears,
/// models) keep it alive. Use from one thread at a time.
public final class CUDAContext: @unchecked Sendable {
    public let library: CUDALibrary
    let handle: OpaquePointer
    public let device: CUDADeviceInfo

    /// - Throws: `CUDAError` when there is no driver, no device, device `index` does not exist,
    ///   or the GPU is older than sm_80.
    public init(library: CUDALibrary, device index: Int = 0) throws(CUDAError) {
        self.library = library
        var out: OpaquePointer?
        try library.check(library.api.context_create(Int32(index), &out), "--device cuda")
        guard let out else { throw CUDAError("--device cuda: context creation returned no context") }
        handle = out
        var props = slim_cuda_device_properties()
        let status = library.api.device_info(out, &props)
        if status != 0 {
            let message = library.lastError()
            library.api.context_destroy(out)
            throw CUDAError("--device cuda: \(message)")
        }
        let name = withUnsafeBytes(of: props.name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        device = CUDADeviceInfo(name: name, computeCapability: (Int(props.major), Int(props.minor)),
                                multiprocessors: Int(props.multiprocessors), totalMemory: Int(props.total_memory),
                                l2CacheBytes: Int(props.l2_cache_bytes),
                                driverVersion: Int(props.driver_version), runtimeVersion: Int(props.runtime_version))
    }

    /// Loads the library (see `CUDALibrary.load`) and opens device 0.
    public convenience init(libraryPath: String?) throws(CUDAError) {
        try self.init(library: try CUDALibrary.load(explicit: libraryPath))
    }

    deinit { library.api.context_destroy(handle) }

    @inline(__always)
    func check(_ status: Int32, _ what: @autoclosure () -> String) throws(CUDAError) {
        try library.check(status, what())
    }

    /// Waits for all queued work; surfaces asynchronous kernel faults.
    public func synchronize() throws(CUDAError) {
        try check(library.api.synchronize(handle), "synchronize")
    }

    /// Device-to-device copy bandwidth in bytes/s, counting bytes read plus bytes written (as
    /// CUDA's bandwidthTest reports it), over `iterations` copies of `bytes`.
    public func copyBandwidth(bytes: Int, iterations: Int) throws(CUDAError) -> Double {
        var result = 0.0
        try check(library.api.copy_bandwidth(handle, bytes, Int32(iterations), &result), "copy bandwidth")
        return result
    }
}

/// `count` elements of `Element` in device memory, freed with the buffer.
public final class CUDABuffer<Element>: @unchecked Sendable {
    public let context: CUDAContext
    public let count: Int
    let pointer: UnsafeMutableRawPointer

    /// - Throws: `CUDAError` when the device is out of memory.
    public init(context: CUDAContext, count: Int) throws(CUDAError) {
        precondition(count >= 0, "CUDABuffer: negative count \(count)")
        self.context = context
        self.count = count
        var out: UnsafeMutableRawPointer?
        let bytes = max(1, count) * MemoryLayout<Element>.stride
        try context.check(context.library.api.device_malloc(context.handle, bytes, &out), "device allocation")
        guard let out else { throw CUDAError("device allocation of \(bytes) bytes returned no memory") }
        pointer = out
    }

    /// A buffer holding `values`.
    public convenience init(context: CUDAContext, values: [Element]) throws(CUDAError) {
        try self.init(context: context, count: values.count)
        try upload(values)
    }

    deinit { context.library.api.device_free(context.handle, pointer) }

    /// Typed device address (for passing to the C API).
    func typed<T>(_ type: T.Type) -> UnsafeMutablePointer<T> { pointer.assumingMemoryBound(to: T.self) }

    /// Copies `values` (at most `count`) to the start of the buffer.
    public func upload(_ values: [Element]) throws(CUDAError) {
        precondition(values.count <= count, "CUDABuffer.upload: \(values.count) values into \(count)")
        let status = values.withUnsafeBytes { raw in
            context.library.api.upload(context.handle, pointer, raw.baseAddress, raw.count)
        }
        try context.check(status, "upload")
    }

    /// The whole buffer, copied to the host.
    public func download() throws(CUDAError) -> [Element] {
        guard count > 0 else { return [] }
        var status: Int32 = 0
        let values = [Element](unsafeUninitializedCapacity: count) { out, initialized in
            status = context.library.api.download(context.handle, out.baseAddress, pointer, count * MemoryLayout<Element>.stride)
            initialized = count
        }
        try context.check(status, "download")
        return values
    }

    /// Fills the buffer with a 32-bit pattern (e.g. a NaN to poison outputs; two fp16 values).
    /// - Precondition: the buffer is a whole number of 4-byte words.
    public func fill(bitPattern: UInt32) throws(CUDAError) {
        let bytes = count * MemoryLayout<Element>.stride
        precondition(bytes % 4 == 0, "CUDABuffer.fill: \(bytes) bytes are not whole 4-byte words")
        try context.check(context.library.api.fill_u32(context.handle, pointer, bitPattern, bytes / 4), "fill")
        try context.synchronize()
    }
}
