import Foundation
import SlimIO
import SlimTestSupport
import XCTest

@testable import SlimModel

/// Committed config fixtures (Tests/SlimModelTests/Fixtures/configs) and small configs built
/// in memory. Shared data, SmolLM2 and temp directories come from `TestFixtures`.
enum Fixtures {
    static func config(_ name: String) -> String { TestFixtures.committed("SlimModelTests", "configs/\(name).json") }

    /// Parses a committed config fixture as JSON (for tests that modify it).
    static func configJSON(_ name: String) throws -> JSON {
        let data = try XCTUnwrap(FileManager.default.contents(atPath: config(name)), "missing fixture \(name)")
        return try JSON.parse(Array(data))
    }

    /// A small valid config, modified by `edit`.
    static func tinyConfig(_ edit: (inout JSONObject) -> Void = { _ in }) -> JSON {
        var o = JSONObject([
            ("architectures", ["LlamaForCausalLM"]), ("model_type", "llama"), ("hidden_size", 16),
            ("intermediate_size", 24), ("num_hidden_layers", 2), ("num_attention_heads", 4),
            ("num_key_value_heads", 2), ("vocab_size", 10), ("rms_norm_eps", 1e-5),
        ])
        edit(&o)
        return .object(o)
    }
}

extension JSON {
    /// A copy with `key` set (nil removes it); only for objects.
    func setting(_ key: String, _ value: JSON?) -> JSON {
        guard case .object(var o) = self else { return self }
        o[key] = value
        return .object(o)
    }
}

/// A `TensorSource` with given names, shapes and dtypes and no data (layout checks never read
/// tensor bytes).
final class ShapeOnlySource: TensorSource {
    private var specs: [(String, DType, [Int])]

    init(_ specs: [(String, DType, [Int])]) { self.specs = specs }

    convenience init(layout: TensorLayout, dtype: DType = .f32) {
        self.init(layout.expectedTensors.map { ($0.name, dtype, $0.shape) })
    }

    var tensorNames: [String] { specs.map(\.0) }

    func tensor(_ name: String) -> TensorView? {
        guard let s = specs.first(where: { $0.0 == name }) else { return nil }
        return TensorView(name: name, dtype: s.1, shape: s.2, bytes: UnsafeRawBufferPointer(start: nil, count: 0), owner: self)
    }

    func removing(_ name: String) -> ShapeOnlySource { ShapeOnlySource(specs.filter { $0.0 != name }) }

    func adding(_ name: String, _ dtype: DType = .f32, _ shape: [Int]) -> ShapeOnlySource {
        ShapeOnlySource(specs + [(name, dtype, shape)])
    }

    func replacing(_ name: String, dtype: DType? = nil, shape: [Int]? = nil) -> ShapeOnlySource {
        ShapeOnlySource(specs.map { $0.0 == name ? ($0.0, dtype ?? $0.1, shape ?? $0.2) : $0 })
    }
}
