import Foundation
import SlimIO
import SlimKernels

/// An error of the runtime proper (bad token ids, a full KV cache, weights that cannot be
/// used), with a one-line message. Checkpoint problems are reported as `FileError` instead.
public struct RuntimeError: Error, CustomStringConvertible, Equatable, Sendable {
    public let message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}

/// A read-only row-major fp32 tensor, either borrowed zero-copy from a `TensorSource` (an F32
/// tensor in a memory map, kept alive by holding its source) or owned (converted from
/// F16/BF16/F64, copied from an unaligned view, or built in memory).
///
/// There is never more than one fp32 copy of a stored tensor: F32 views are used in place and
/// other dtypes are converted once, straight into the owned buffer.
public final class FloatTensor: @unchecked Sendable {
    /// Row-major shape, outermost first.
    public let shape: [Int]
    /// Number of elements (the product of `shape`).
    public let count: Int
    /// The first element. Valid for `count` elements while this object is alive.
    public let pointer: UnsafePointer<Float>
    /// True when the data lives in the source's storage (zero-copy) rather than in memory
    /// this tensor allocated.
    public let isBorrowed: Bool

    /// Keeps the borrowed storage alive (the tensor source), or nil when owned.
    private let owner: AnyObject?
    private let allocation: UnsafeMutablePointer<Float>?

    /// Rows of a matrix: `shape[0]`, or 1 for a vector.
    public var rows: Int { shape.count >= 2 ? shape[0] : 1 }
    /// Elements per row: the product of all dimensions but the first (the whole vector for 1-D).
    public var cols: Int { shape.count >= 2 ? count / max(shape[0], 1) : count }

    /// The elements as a buffer (valid while this object is alive).
    public var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }

    // MARK: Construction

    /// A tensor that takes ownership of `count` floats written by `initialize`.
    /// - Precondition: every dimension is non-negative and the product does not overflow.
    public init(shape: [Int], initialize: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        let n = Self.elementCount(shape) ?? -1
        precondition(n >= 0, "FloatTensor: invalid shape \(shape)")
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: max(n, 1))
        do {
            try initialize(UnsafeMutableBufferPointer(start: memory, count: n))
        } catch {
            memory.deallocate()
            throw error
        }
        self.shape = shape
        count = n
        pointer = UnsafePointer(memory)
        allocation = memory
        owner = nil
        isBorrowed = false
    }

    /// An owned copy of `values` with the given shape.
    /// - Precondition: `values.count` equals the product of `shape`.
    public convenience init(shape: [Int], values: [Float]) {
        precondition(Self.elementCount(shape) == values.count,
                     "FloatTensor: \(values.count) values do not fill shape \(shape)")
        self.init(shape: shape) { out in
            _ = out.initialize(from: values)
        }
    }

    /// The fp32 form of a stored tensor. F32 data that is 4-byte aligned is borrowed (and
    /// `source` retained); anything else is converted or copied once into owned memory.
    /// - Throws: `FileError` naming `path` when the dtype is not floating-point or the byte
    ///   count does not match the shape.
    public convenience init(_ view: TensorView, source: AnyObject, path: String) throws(FileError) {
        guard view.dtype.isFloatingPoint else {
            throw FileError(path, "tensor \(view.name) is \(view.dtype.rawValue), expected a floating-point type")
        }
        guard let n = Self.elementCount(view.shape),
              case let (bytes, overflow) = n.multipliedReportingOverflow(by: view.dtype.byteSize),
              !overflow, bytes == view.bytes.count
        else {
            throw FileError(path, "tensor \(view.name) has \(view.bytes.count) bytes, which does not match \(view.dtype.rawValue) \(view.shape)")
        }
        let base = view.bytes.baseAddress
        #if _endian(little)
        if view.dtype == .f32, let base, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            self.init(borrowing: base.assumingMemoryBound(to: Float.self), shape: view.shape, count: n, owner: source)
            return
        }
        #endif
        self.init(shape: view.shape) { out in
            guard n > 0, let dst = out.baseAddress, let base else { return }
            Self.convert(view.dtype, from: UnsafeRawPointer(base), to: dst, count: n)
        }
    }

    private init(borrowing pointer: UnsafePointer<Float>, shape: [Int], count: Int, owner: AnyObject) {
        self.shape = shape
        self.count = count
        self.pointer = pointer
        self.owner = owner
        allocation = nil
        isBorrowed = true
    }

    deinit {
        allocation?.deallocate()
    }

    // MARK: Helpers

    /// Product of `shape`, or nil for a negative dimension or an overflowing product.
    static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            if overflow { return nil }
            n = p
        }
        return n
    }

    /// Widens `count` little-endian elements of a floating-point `dtype` at `src` (any
    /// alignment) into `dst`. F16 and BF16 are exact; F64 rounds to nearest.
    private static func convert(_ dtype: DType, from src: UnsafeRawPointer, to dst: UnsafeMutablePointer<Float>, count: Int) {
        // Work in aligned chunks so the SIMD converters get aligned UInt16 input even when the
        // view is not 2-byte aligned.
        let chunk = 4096
        switch dtype {
        case .f16, .bf16:
            let scratch = UnsafeMutablePointer<UInt16>.allocate(capacity: chunk)
            defer { scratch.deallocate() }
            var i = 0
            while i < count {
                let n = min(chunk, count - i)
                for j in 0..<n {
                    scratch[j] = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * (i + j), as: UInt16.self))
                }
                if dtype == .f16 {
                    Kernels.convertF16ToF32(scratch, dst + i, count: n)
                } else {
                    Kernels.convertBF16ToF32(scratch, dst + i, count: n)
                }
                i += n
            }
        case .f32:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        default:  // .f64 (the caller admits floating-point types only)
            for i in 0..<count {
                dst[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
            }
        }
    }
}
