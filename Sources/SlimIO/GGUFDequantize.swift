// Decoders for the ggml tensor types the importer supports, bit-exact with ggml.
//
// Block layouts (ggml-common.h), all little-endian, fp16 scales:
//   Q8_0: d: f16, qs: int8[32]                    x[j] = qs[j] * d                  (34 bytes)
//   Q4_0: d: f16, qs: u8[16]                      x[j] = ((qs[j] & 15) - 8) * d,
//                                                 x[j+16] = ((qs[j] >> 4) - 8) * d   (18 bytes)
//   Q4_1: d: f16, m: f16, qs: u8[16]              x[j] = (qs[j] & 15) * d + m,
//                                                 x[j+16] = (qs[j] >> 4) * d + m     (20 bytes)
// i.e. low nibbles give elements 0...15 and high nibbles 16...31 (ggml's dequantize_row_q4_0/1).
//
// Exactness: d has 11 significant bits and |q| < 2^8, so every product q*d is exact in
// Float; Q4_1 then rounds once in the addition, in that order. No step depends on evaluation
// order or FMA contraction. (A numpy reimplementation that computes Q4_0 as d*q + (-8*d)
// gets the same values except +0.0 instead of ggml's -0.0 where q = 8 and d < 0.)

/// Element decoders for ggml tensor data.
public enum GGMLDequantize {
    /// F16 bits → F32 for all 65,536 patterns, computed by exact bit manipulation (the same
    /// mapping as numpy's npy_halfbits_to_floatbits: subnormals normalized, inf kept, NaN
    /// payload shifted into the F32 mantissa). A table keeps the per-element cost to one load.
    static let halfTable: [Float] = (0...UInt16.max).map { halfBitsToFloat($0) }

    /// Exact F16 → F32 conversion of one bit pattern.
    public static func halfBitsToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = UInt32(h >> 10) & 0x1F
        var mant = UInt32(h & 0x03FF)
        switch exp {
        case 0:
            if mant == 0 { return Float(bitPattern: sign) }
            // Subnormal: shift until the implicit bit appears, adjusting the exponent.
            var e: UInt32 = 113  // 127 - 15 + 1
            while mant & 0x0400 == 0 {
                mant <<= 1
                e -= 1
            }
            return Float(bitPattern: sign | (e << 23) | ((mant & 0x03FF) << 13))
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13))
        default:
            return Float(bitPattern: sign | ((exp + 112) << 23) | (mant << 13))
        }
    }

    /// BF16 bits → F32 (exact: BF16 is the upper half of an F32).
    @inline(__always)
    public static func bf16BitsToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Decodes `src` (a whole tensor of `type`) into `out`. The caller guarantees that `src`
    /// holds exactly `out.count` elements of `type` (GGUFFile validated the extent) and that
    /// `type.isDequantizable`.
    static func decode(_ type: GGMLType, from src: UnsafeRawBufferPointer, into out: UnsafeMutableBufferPointer<Float>) {
        guard out.count > 0, let s = src.baseAddress, let o = out.baseAddress else { return }
        halfTable.withUnsafeBufferPointer { table in
            let half = table.baseAddress!  // 65,536 entries, never empty
            switch type {
            case .f32:
                UnsafeMutableRawPointer(o).copyMemory(from: s, byteCount: out.count * 4)
            case .f16:
                for i in 0..<out.count { o[i] = half[Int(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))] }
            case .bf16:
                for i in 0..<out.count { o[i] = bf16BitsToFloat(UInt16(littleEndian: s.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
            case .q8_0:
                decodeQ8_0(s, o, blocks: out.count / 32, half: half)
            case .q4_0:
                decodeQ4_0(s, o, blocks: out.count / 32, half: half)
            case .q4_1:
                decodeQ4_1(s, o, blocks: out.count / 32, half: half)
            default:
                preconditionFailure("GGMLDequantize.decode: \(type) is not decodable")
            }
        }
    }

    // MARK: - Block kernels (tight loops over raw pointers; no per-element allocation)

    @inline(__always)
    private static func scale(_ p: UnsafeRawPointer, _ offset: Int, _ half: UnsafePointer<Float>) -> Float {
        half[Int(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))]
    }

    private static func decodeQ8_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int, half: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let blk = src + b * 34
            let d = scale(blk, 0, half)
            let qs = (blk + 2).assumingMemoryBound(to: Int8.self)
            let y = dst + b * 32
            for j in 0..<32 { y[j] = Float(qs[j]) * d }
        }
    }

    private static func decodeQ4_0(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int, half: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let blk = src + b * 18
            let d = scale(blk, 0, half)
            let qs = (blk + 2).assumingMemoryBound(to: UInt8.self)
            let y = dst + b * 32
            for j in 0..<16 {
                let q = qs[j]
                y[j] = Float(Int32(q & 0x0F) - 8) * d
                y[j + 16] = Float(Int32(q >> 4) - 8) * d
            }
        }
    }

    private static func decodeQ4_1(_ src: UnsafeRawPointer, _ dst: UnsafeMutablePointer<Float>, blocks: Int, half: UnsafePointer<Float>) {
        for b in 0..<blocks {
            let blk = src + b * 20
            let d = scale(blk, 0, half)
            let m = scale(blk, 2, half)
            let qs = (blk + 4).assumingMemoryBound(to: UInt8.self)
            let y = dst + b * 32
            for j in 0..<16 {
                let q = qs[j]
                y[j] = Float(q & 0x0F) * d + m
                y[j + 16] = Float(q >> 4) * d + m
            }
        }
    }
}
