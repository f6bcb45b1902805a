import Foundation
import SlimModel

/// Rotary position embeddings exactly as transformers' `LlamaRotaryEmbedding` computes them in
/// float32: the same inverse frequencies (including Llama 3.1 frequency scaling), angles
/// `Float(position) · invFreq[i]` rounded to Float, cos/sin of those angles, and the
/// rotate-half convention (dimension i pairs with i + headDim/2).
///
/// Values are tabulated per position on first use; the table grows as longer contexts are
/// seen. Not safe for concurrent mutation: owned by one `LlamaModel`.
public final class RotaryEmbedding {
    public let headDim: Int
    /// `headDim / 2` inverse frequencies, as transformers computes them.
    public let inverseFrequencies: [Float]

    /// cos and sin per position, `headDim / 2` each, row-major by position.
    private var cosTable: [Float] = []
    private var sinTable: [Float] = []
    private var tabulated = 0

    public convenience init(config: LlamaConfig) {
        self.init(headDim: config.headDim, theta: config.ropeTheta, scaling: config.ropeScaling)
    }

    /// - Precondition: `headDim` is positive and even.
    public init(headDim: Int, theta: Double, scaling: LlamaConfig.RopeScaling?) {
        precondition(headDim > 0 && headDim % 2 == 0, "RotaryEmbedding: head_dim must be positive and even, got \(headDim)")
        self.headDim = headDim
        inverseFrequencies = Self.inverseFrequencies(headDim: headDim, theta: theta, scaling: scaling)
    }

    // MARK: Frequencies

    /// transformers' inverse frequencies in float32.
    ///
    /// Default: `1 / θ^(Float(2i) / Float(d))` (the division and the power in float32, as
    /// `base ** (arange(0, d, 2).float() / d)` computes it). Llama 3: `_compute_llama3_parameters`
    /// with torch's operation order, where `scalar / tensor` is `reciprocal(tensor) · scalar`:
    /// wavelengths `2π/f` above `original/low` are divided by `factor`, those below
    /// `original/high` kept, and those between blended with
    /// `s = (original/wavelen − low) / (high − low)`: `(1 − s)·f/factor + s·f`.
    public static func inverseFrequencies(headDim: Int, theta: Double, scaling: LlamaConfig.RopeScaling?) -> [Float] {
        let half = headDim / 2
        let base = Float(theta)
        var inv = (0..<half).map { i -> Float in
            let exponent = Float(2 * i) / Float(headDim)
            let power = Float(Foundation.pow(Double(base), Double(exponent)))
            return 1 / power
        }
        guard case .llama3(let factor, let lowFactor, let highFactor, let original)? = scaling else { return inv }
        let factorF = Float(factor), lowF = Float(lowFactor)
        let lowWavelen = Float(Double(original) / lowFactor)
        let highWavelen = Float(Double(original) / highFactor)
        let span = Float(highFactor - lowFactor)
        let twoPi = Float(2 * Double.pi), originalF = Float(original)
        for i in 0..<half {
            let f = inv[i]
            let wavelen = (1 / f) * twoPi
            let scaled = wavelen > lowWavelen ? f / factorF : f
            if !(wavelen < highWavelen) && !(wavelen > lowWavelen) {
                let smooth = ((1 / wavelen) * originalF - lowF) / span
                inv[i] = (1 - smooth) * scaled / factorF + smooth * scaled
            } else {
                inv[i] = scaled
            }
        }
        return inv
    }

    // MARK: Tables

    /// Makes sure positions `0..<count` are tabulated.
    func reserve(positions count: Int) {
        guard count > tabulated else { return }
        // Grow geometrically so step-by-step decoding does not recompute the table each time.
        let target = max(count, min(2 * tabulated, count + 4096), 64)
        let half = headDim / 2
        cosTable.reserveCapacity(target * half)
        sinTable.reserveCapacity(target * half)
        for p in tabulated..<target {
            let position = Float(p)
            for i in 0..<half {
                let angle = Double(position * inverseFrequencies[i])
                cosTable.append(Float(Foundation.cos(angle)))
                sinTable.append(Float(Foundation.sin(angle)))
            }
        }
        tabulated = target
    }

    /// (cos, sin) of `position`, `headDim / 2` values each. For tests and diagnostics.
    public func cosSin(position: Int) -> (cos: [Float], sin: [Float]) {
        precondition(position >= 0, "RotaryEmbedding: negative position")
        reserve(positions: position + 1)
        let half = headDim / 2
        let range = (position * half)..<((position + 1) * half)
        return (Array(cosTable[range]), Array(sinTable[range]))
    }

    // MARK: Application

    /// Rotates `heads` heads of `headDim` values in each of `rows` rows in place; row r is at
    /// `x + r · rowStride` and has position `startPosition + r`.
    ///
    /// out[i] = x[i]·cos − x[i+h]·sin, out[i+h] = x[i+h]·cos + x[i]·sin (h = headDim/2): the
    /// two products rounded separately and then added, as `q·cos + rotate_half(q)·sin` does.
    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, rowStride: Int, heads: Int, startPosition: Int) {
        guard rows > 0 else { return }
        reserve(positions: startPosition + rows)
        let half = headDim / 2
        cosTable.withUnsafeBufferPointer { cosBuffer in
            sinTable.withUnsafeBufferPointer { sinBuffer in
                for r in 0..<rows {
                    let c = cosBuffer.baseAddress! + (startPosition + r) * half
                    let s = sinBuffer.baseAddress! + (startPosition + r) * half
                    for h in 0..<heads {
                        let v = x + r * rowStride + h * headDim
                        Self.rotate(v, v + half, c, s, half)
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func rotate(_ lo: UnsafeMutablePointer<Float>, _ hi: UnsafeMutablePointer<Float>,
                               _ c: UnsafePointer<Float>, _ s: UnsafePointer<Float>, _ n: Int) {
        var i = 0
        while i + 8 <= n {
            let a = UnsafeRawPointer(lo + i).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(hi + i).loadUnaligned(as: SIMD8<Float>.self)
            let cv = UnsafeRawPointer(c + i).loadUnaligned(as: SIMD8<Float>.self)
            let sv = UnsafeRawPointer(s + i).loadUnaligned(as: SIMD8<Float>.self)
            let newLo = a * cv + (-b) * sv
            let newHi = b * cv + a * sv
            UnsafeMutableRawPointer(lo + i).storeBytes(of: newLo, as: SIMD8<Float>.self)
            UnsafeMutableRawPointer(hi + i).storeBytes(of: newHi, as: SIMD8<Float>.self)
            i += 8
        }
        while i < n {
            let a = lo[i], b = hi[i]
            lo[i] = a * c[i] + (-b) * s[i]
            hi[i] = b * c[i] + a * s[i]
            i += 1
        }
    }
}
