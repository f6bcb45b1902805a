// Reading and writing the tensors of packed linears through SlimIO's safetensors types.

import SlimIO

extension PackedLinear {
    // MARK: - Writing

    /// The packed tensors of this layer under `prefix`, in the order of `PackedGeometry.tensorShapes`.
    public func streamedTensors(prefix: String) -> [StreamedTensor] {
        let shapes = geometry.tensorShapes
        func tensor<T>(_ index: Int, _ values: [T]) -> StreamedTensor {
            let (suffix, dtype, shape) = shapes[index]
            return StreamedTensor(name: prefix + suffix, dtype: dtype, shape: shape) { emit in
                try values.withUnsafeBytes { try emit($0) }
            }
        }
        return [tensor(0, bits), tensor(1, qweight), tensor(2, scales), tensor(3, qzeros), tensor(4, means)]
    }

    // MARK: - Reading

    /// Reads the packed linear `prefix` from `source`, checking every tensor's dtype and shape
    /// against the geometry implied by `rows`, `columns`, `groupSize` and the stored bit map.
    /// - Throws: `FileError` (naming `path` and the tensor) for a missing or misshapen tensor,
    ///   bits outside 1…8, or non-finite scales/means.
    public init(source: any TensorSource, prefix: String, rows: Int, columns: Int, groupSize: Int,
                path: String) throws(FileError) {
        func view(_ suffix: String) throws(FileError) -> TensorView {
            guard let v = source.tensor(prefix + suffix) else { throw FileError(path, "missing tensor \(prefix + suffix)") }
            return v
        }
        let bitsView = try view(PackedFormat.Suffix.bits)
        let k = (columns + groupSize - 1) / groupSize
        guard bitsView.dtype == .u8, bitsView.shape == [k] else {
            throw FileError(path, "\(prefix)\(PackedFormat.Suffix.bits) is \(bitsView.dtype.rawValue) \(bitsView.shape), expected U8 [\(k)]")
        }
        let bits = bitsView.withBytes { Array($0.bindMemory(to: UInt8.self)) }
        let geometry: PackedGeometry
        do { geometry = try PackedGeometry(rows: rows, columns: columns, groupSize: groupSize, bits: bits) } catch {
            throw FileError(path, "\(prefix): \(error.message)")
        }
        var buffers: [[UInt8]] = []
        for (suffix, dtype, shape) in geometry.tensorShapes.dropFirst() {
            let v = try view(suffix)
            guard v.dtype == dtype, v.shape == shape, v.bytes.count == shape.reduce(dtype.byteSize, *) else {
                throw FileError(path, "\(prefix + suffix) is \(v.dtype.rawValue) \(v.shape), expected \(dtype.rawValue) \(shape)")
            }
            buffers.append(v.withBytes { Array($0.bindMemory(to: UInt8.self)) })
        }
        func halves(_ bytes: [UInt8]) -> [UInt16] {
            bytes.withUnsafeBytes { raw in (0..<bytes.count / 2).map { raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian } }
        }
        do {
            try self.init(geometry: geometry, qweight: buffers[0], scales: halves(buffers[1]), qzeros: buffers[2],
                          means: halves(buffers[3]))
        } catch {
            throw FileError(path, "\(prefix): \(error.message)")
        }
    }
}
