import CSlimCUDA
import SlimKernels
import SlimPacking
import XCTest

@testable import SlimCUDA

/// The GPU layout against the format's scalar reference, decoded with the kernel's own decode
/// (`slim_layout_decode_pair`, the host build of the device code) and fragment maps.
final class GPULayoutTests: XCTestCase {
    /// Bit maps covering every width 1…8, mixes, ragged last groups and group sizes that are not
    /// multiples of the 64-column slab.
    static let cases: [(columns: Int, groupSize: Int, bits: [UInt8])] = [
        (128, 32, [1, 2, 3, 4]),
        (256, 64, [2, 1, 3, 2]),
        (576, 128, [3, 2, 1, 2, 2]),          // SmolLM2 hidden: last group 64 wide
        (172, 32, [2, 3, 1, 4, 2, 3]),        // stories260K MLP: last group 12 wide
        (96, 32, [5, 6, 7]),
        (80, 16, [8, 1, 4, 3, 2]),
        (40, 128, [1]),
        (300, 100, [3, 4, 2]),                // group size 100: padded to 128
        (200, 192, [2, 5]),                   // 3 slabs per group
    ]

    func testEveryCodeAndParamDecodesToTheReference() throws {
        for (index, c) in Self.cases.enumerated() {
            let packed = try RandomPacked.make(rows: 37, columns: c.columns, groupSize: c.groupSize, bits: c.bits,
                                               seed: UInt64(index))
            let layout = GPUPackedLayout(packed)
            let decoded = LayoutDecoder(layout).codes()
            for r in 0..<37 {
                for col in 0..<c.columns {
                    let got = try XCTUnwrap(decoded[LayoutDecoder.Key(row: r, column: col)], "case \(index): [\(r), \(col)] not in the layout")
                    XCTAssertEqual(got, Int(packed.code(row: r, column: col)), "case \(index) [\(r), \(col)]")
                }
            }
            // Everything else in the tiles (padding rows and columns) decodes to code 0.
            XCTAssertEqual(decoded.count, LayoutDecoder(layout).slotCount, "case \(index): a slot decoded twice")
            for (key, q) in decoded where key.row >= 37 || key.column < 0 {
                XCTAssertEqual(q, 0, "case \(index): padding \(key) holds \(q)")
            }
            for r in 0..<37 {
                for g in 0..<c.bits.count {
                    let (s, z) = packed.parameters(row: r, group: g)
                    let expected: (Float, Float) = c.bits[g] == 1 ? (2 * s, z - s) : (s, -(s * z))
                    let got = LayoutDecoder(layout).affine(row: r, group: g)
                    XCTAssertEqual(got.a, expected.0, "case \(index) row \(r) group \(g)")
                    XCTAssertEqual(got.o, expected.1, "case \(index) row \(r) group \(g)")
                }
            }
        }
    }

    func testPlanesCoverEveryWidthAndDecodeTheLargestCode() {
        for b in Int32(1)...8 {
            var sum: Int32 = 0
            for p in 0..<slim_layout_plane_count(b) {
                XCTAssertEqual(slim_layout_plane_offset(b, p), sum)
                sum += slim_layout_plane_width(b, p)
            }
            XCTAssertEqual(sum, b, "bits \(b)")
            // All-ones words: every pair decodes to 2^b − 1 in both halves, exactly.
            let words = [UInt32](repeating: .max, count: Int(b))
            for pair in Int32(0)..<16 {
                let h = slim_layout_decode_pair(words, b, pair)
                XCTAssertEqual(Kernels.Reference.f16ToF32(UInt16(h & 0xFFFF)), Float((1 << b) - 1))
                XCTAssertEqual(Kernels.Reference.f16ToF32(UInt16(h >> 16)), Float((1 << b) - 1))
            }
        }
    }

    func testEmulatedKernelMatchesFloat64Reference() throws {
        for (index, c) in Self.cases.enumerated() {
            for tokens in [1, 3, 6] {
                let packed = try RandomPacked.make(rows: 21, columns: c.columns, groupSize: c.groupSize, bits: c.bits,
                                                   seed: UInt64(100 + index))
                var rng = SplitMix64(seed: UInt64(index * 10 + tokens))
                var x = (0..<(tokens * c.columns)).map { _ in Float(rng.next() >> 40) / Float(1 << 23) - 1 }
                // A token of large values and one of tiny values exercise the power-of-two scaling.
                if tokens >= 3 {
                    for j in 0..<c.columns { x[c.columns + j] *= 3000; x[2 * c.columns + j] *= 1e-4 }
                }
                let got = KernelEmulator(GPUPackedLayout(packed)).gemm(x: x, tokens: tokens)
                let w = packed.dequantize()
                var worst = 0.0
                for t in 0..<tokens {
                    for r in 0..<21 {
                        var want = 0.0, scale = 0.0
                        for col in 0..<c.columns {
                            let p = Double(w[r * c.columns + col]) * Double(x[t * c.columns + col])
                            want += p
                            scale += abs(p)
                        }
                        let value = Double(got[t * 21 + r])
                        XCTAssertFalse(value.isNaN, "case \(index) T=\(tokens): NaN at [\(t), \(r)]")
                        worst = max(worst, abs(value - want) / max(scale, 1e-30))
                    }
                }
                // hi + lo carries ~22 bits of x; products and sums are fp32.
                XCTAssertLessThan(worst, 2e-6, "case \(index) T=\(tokens)")
            }
        }
    }

    func testRandomLayoutAndBitMix() {
        let mix = SyntheticModel.bitMix(groups: 86, bits: 3, seed: 5)
        XCTAssertEqual(mix.count, 86)
        XCTAssertEqual(mix.reduce(0) { $0 + Int($1) }, 3 * 86)
        XCTAssertEqual(Set(mix), [2, 3, 4])
        let layout = GPUPackedLayout.random(rows: 40, columns: 300, groupSize: 128, bits: [2, 3, 1], weightStd: 0.05, seed: 9)
        XCTAssertEqual(layout.words.count, 3 * 32 * 2 * 6)   // 3 tiles × 32 lanes × 2 slabs × Σb
        XCTAssertEqual(layout.params.count, 3 * 3 * 16)
        let decoder = LayoutDecoder(layout)
        for r in 0..<40 {
            for g in 0..<3 {
                let (a, o) = decoder.affine(row: r, group: g)
                XCTAssertTrue(a > 0 && a.isFinite && o.isFinite, "row \(r) group \(g): a \(a) o \(o)")
            }
        }
    }
}

// MARK: - Helpers

/// Random quantizer-shaped output packed by the format's encoder.
enum RandomPacked {
    static func make(rows: Int, columns: Int, groupSize: Int, bits: [UInt8], seed: UInt64) throws -> PackedLinear {
        var rng = SplitMix64(seed: seed)
        func unit() -> Float { Float(rng.next() >> 40) / Float(1 << 24) }
        func half(_ x: Float) -> Float { Kernels.Reference.f16ToF32(Kernels.Reference.f32ToF16(x)) }
        let k = bits.count
        var scales: [Float] = [], zeros: [Float] = []
        var codes = [UInt8](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for g in 0..<k {
                let b = Int(bits[g])
                scales.append(half(unit() * 0.05 + 1e-3))
                zeros.append(b == 1 ? half((unit() - 0.5) * 0.02) : Float(rng.next() % UInt64(1 << b)))
                for c in (g * groupSize)..<min(columns, (g + 1) * groupSize) {
                    codes[r * columns + c] = b == 1 ? (rng.next() & 1 == 0 ? 1 : 3) : UInt8(rng.next() % UInt64(1 << b))
                }
            }
        }
        return try PackedLinear(rows: rows, columns: columns, groupSize: groupSize, bits: bits, scales: scales,
                                zeros: zeros, codes: codes)
    }
}

/// Walks a GPU layout the way the kernel does: per row tile, group, slab and lane, the lane's
/// words, `slim_layout_decode_pair` and the A-fragment map.
struct LayoutDecoder {
    struct Key: Hashable, CustomStringConvertible {
        let row: Int
        /// Real column, or −(padded column + 1) for padding.
        let column: Int
        var description: String { "[\(row), \(column)]" }
    }

    let layout: GPUPackedLayout
    let k: Int, slabs: Int, tiles: Int, tileWords: Int
    let groupOffset: [Int]

    init(_ layout: GPUPackedLayout) {
        self.layout = layout
        k = layout.bits.count
        slabs = Int(slim_layout_slabs(Int32(layout.groupSize)))
        tiles = Int(slim_layout_row_tiles(Int32(layout.rows)))
        var offsets: [Int] = [], sum = 0
        for b in layout.bits {
            offsets.append(sum)
            sum += 32 * slabs * Int(b)
        }
        groupOffset = offsets
        tileWords = sum
    }

    /// Code slots in the layout: every (row, padded column) of every tile.
    var slotCount: Int { tiles * 16 * k * slabs * 64 }

    /// The lane's b words of a slab, as the kernel loads them.
    func laneWords(tile: Int, group g: Int, slab: Int, lane: Int) -> [UInt32] {
        let b = Int(layout.bits[g])
        return (0..<b).map { i in layout.words[tile * tileWords + groupOffset[g] + (slab * b + i) * 32 + lane] }
    }

    /// The A fragment (register r, half e) of a lane for k-tile kt of a slab, as fp16 bits.
    func fragment(tile: Int, group g: Int, slab: Int, lane: Int, kt: Int, register r: Int) -> UInt32 {
        slim_layout_decode_pair(laneWords(tile: tile, group: g, slab: slab, lane: lane), Int32(layout.bits[g]), Int32(kt * 4 + r))
    }

    /// Every slot's code, keyed by (row, column).
    func codes() -> [Key: Int] {
        var out: [Key: Int] = [:]
        let gp = Int(slim_layout_padded_group(Int32(layout.groupSize)))
        for tile in 0..<tiles {
            for g in 0..<k {
                for slab in 0..<slabs {
                    for lane in 0..<32 {
                        for kt in 0..<4 {
                            for r in 0..<4 {
                                let h = fragment(tile: tile, group: g, slab: slab, lane: lane, kt: kt, register: r)
                                for e in 0..<2 {
                                    let row = tile * 16 + Int(slim_frag_a_row(Int32(lane), Int32(r)))
                                    let kp = g * gp + slab * 64 + kt * 16 + Int(slim_frag_a_col(Int32(lane), Int32(r), Int32(e)))
                                    let col = Int(slim_layout_real_column(Int32(kp), Int32(layout.groupSize), Int32(layout.columns)))
                                    let q = Kernels.Reference.f16ToF32(UInt16(truncatingIfNeeded: h >> (16 * UInt32(e))))
                                    out[Key(row: row, column: col >= 0 ? col : -(kp + 1))] = Int(q)
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The folded (a, o) of (row, group) through `slim_layout_affine`.
    func affine(row: Int, group g: Int) -> (a: Float, o: Float) {
        let rr = row % 16
        let param = layout.params[((row / 16) * k + g) * 16 + (rr % 8) * 2 + rr / 8]
        var a: Float = 0, o: Float = 0
        slim_layout_affine(param, Int32(layout.bits[g]), &a, &o)
        return (a, o)
    }
}
