import Foundation
import XCTest
import SlimTestSupport
@testable import SlimIO

/// Files written by the reference implementation (Python `safetensors`, `huggingface_hub`;
/// see scripts/reference/make_safetensors_fixtures.py) are read correctly, and our writer
/// reproduces their bytes exactly from the same inputs.
final class SafetensorsReferenceTests: XCTestCase {
    struct TensorSpec {
        let name: String
        let dtype: DType
        let shape: [Int]
        let raw: [UInt8]
        let json: JSON
    }

    func metadataPairs(_ json: JSON?) throws -> [(key: String, value: String)]? {
        guard let json, json != .null else { return nil }
        return try XCTUnwrap(json.array).map { pair in
            (try XCTUnwrap(pair[0]?.string), try XCTUnwrap(pair[1]?.string))
        }
    }

    func tensorSpecs(_ fileSpec: JSON) throws -> [TensorSpec] {
        try XCTUnwrap(fileSpec["tensors"]?.array).map { t in
            TensorSpec(
                name: try XCTUnwrap(t["name"]?.string),
                dtype: try XCTUnwrap(DType(rawValue: XCTUnwrap(t["dtype"]?.string))),
                shape: try XCTUnwrap(t["shape"]?.array).map { try XCTUnwrap($0.int) },
                raw: try bytesFromHex(XCTUnwrap(t["raw_hex"]?.string)),
                json: t)
        }
    }

    /// Integer elements widened to Int64 (BOOL as 0/1).
    func integers(_ view: TensorView) -> [Int64] {
        let b = [UInt8](view.bytes)
        switch view.dtype {
        case .i64: return b.loadAll(as: Int64.self)
        case .i32: return b.loadAll(as: Int32.self).map(Int64.init)
        case .i16: return b.loadAll(as: Int16.self).map(Int64.init)
        case .i8: return b.loadAll(as: Int8.self).map(Int64.init)
        default: return b.map(Int64.init)
        }
    }

    func assertFileMatches(_ file: SafetensorsFile, _ spec: JSON, line: UInt = #line) throws {
        let expectedMeta = try metadataPairs(spec["metadata"])
        XCTAssertEqual(file.metadata?.map(\.key), expectedMeta?.map(\.key), line: line)
        XCTAssertEqual(file.metadata?.map(\.value), expectedMeta?.map(\.value), line: line)
        let tensors = try tensorSpecs(spec)
        XCTAssertEqual(file.tensorNames, tensors.map(\.name), line: line)
        for t in tensors {
            let view = try XCTUnwrap(file.tensor(t.name), t.name)
            XCTAssertEqual(view.dtype, t.dtype, t.name, line: line)
            XCTAssertEqual(view.shape, t.shape, t.name, line: line)
            XCTAssertEqual(Array(view.bytes), t.raw, t.name, line: line)
            if let bits = t.json["float_bits"]?.array {
                let expected = try bits.map { UInt32(try XCTUnwrap($0.int)) }
                XCTAssertEqual(try floatArray(view).map(\.bitPattern), expected, t.name, line: line)
            }
            if let ints = t.json["ints"]?.array {
                XCTAssertEqual(integers(view), try ints.map { Int64(try XCTUnwrap($0.int)) }, t.name, line: line)
            }
        }
    }

    // MARK: Single files

    func testReadsPythonWrittenFiles() throws {
        let files = try XCTUnwrap(STFixture.expected()["files"]?.array)
        XCTAssertEqual(files.count, 3)
        for spec in files {
            let name = try XCTUnwrap(spec["file"]?.string)
            try assertFileMatches(SafetensorsFile(path: STFixture.path(name)), spec)
        }
    }

    func testWriterReproducesPythonFilesByteForByte() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        for spec in try XCTUnwrap(STFixture.expected()["files"]?.array) {
            let name = try XCTUnwrap(spec["file"]?.string)
            var writer = SafetensorsWriter()
            // The reference's metadata order is a hash-map order; reuse the order it wrote.
            writer.metadata = try metadataPairs(spec["metadata"])
            for t in try tensorSpecs(spec).reversed() {  // insertion order must not matter
                try t.raw.withUnsafeBytes { try writer.add(name: t.name, dtype: t.dtype, shape: t.shape, bytes: $0) }
            }
            try writer.write(to: dir + "/" + name)
            XCTAssertEqual(try STFixture.bytes(of: dir + "/" + name), try STFixture.bytes(of: STFixture.path(name)), name)
        }
    }

    func testFloatEncodersMatchPyTorch() throws {
        let expected = try STFixture.expected()
        let files = try XCTUnwrap(expected["files"]?.array)
        for source in try XCTUnwrap(expected["float_sources"]?.array) {
            let fileName = try XCTUnwrap(source["file"]?.string)
            let tensorName = try XCTUnwrap(source["tensor"]?.string)
            let dtype = try XCTUnwrap(DType(rawValue: XCTUnwrap(source["dtype"]?.string)))
            let floats = try XCTUnwrap(source["source_f32_bits"]?.array).map {
                Float(bitPattern: UInt32(try XCTUnwrap($0.int)))
            }
            let fileSpec = try XCTUnwrap(files.first { $0["file"]?.string == fileName })
            let target = try XCTUnwrap(tensorSpecs(fileSpec).first { $0.name == tensorName })

            var writer = SafetensorsWriter()
            try writer.add(name: tensorName, floats: floats, shape: target.shape, as: dtype)
            let path = try TestFixtures.temporaryDirectory(self) + "/enc.safetensors"
            try writer.write(to: path)
            let file = try SafetensorsFile(path: path)
            let written = try XCTUnwrap(file.tensor(tensorName))
            XCTAssertEqual(Array(written.bytes), target.raw, "\(tensorName) as \(dtype.rawValue)")
            withExtendedLifetime(file) {}  // the view borrows the file's memory map
        }
    }

    // MARK: Sharded checkpoint

    func testReadsPythonShardedCheckpoint() throws {
        let spec = try XCTUnwrap(STFixture.expected()["sharded"])
        let checkpoint = try SafetensorsCheckpoint(directory: STFixture.path("sharded"))
        defer { withExtendedLifetime(checkpoint) {} }  // views borrow its memory map
        let shardSpecs = try XCTUnwrap(spec["shards"]?.array)
        XCTAssertEqual(checkpoint.shards.count, shardSpecs.count)
        XCTAssertEqual(checkpoint.indexMetadata?["total_size"]?.int, spec["total_size"]?.int)
        for (shard, shardSpec) in zip(checkpoint.shards, shardSpecs) {
            XCTAssertEqual((shard.path as NSString).lastPathComponent, shardSpec["file"]?.string)
            try assertFileMatches(shard, shardSpec)
        }
        let weightMap = try XCTUnwrap(spec["weight_map"]?.object)
        XCTAssertEqual(Set(checkpoint.tensorNames), Set(weightMap.keys))
        for (tensor, shardName) in weightMap.pairs {
            let shard = try XCTUnwrap(checkpoint.shard(containing: tensor))
            XCTAssertEqual((shard.path as NSString).lastPathComponent, shardName.string)
            XCTAssertEqual(Array(try XCTUnwrap(checkpoint.tensor(tensor)).bytes), Array(try XCTUnwrap(shard.tensor(tensor)).bytes))
        }
        XCTAssertNil(checkpoint.tensor("model.missing"))
    }

    func testWriterReproducesPythonShardedCheckpoint() throws {
        let spec = try XCTUnwrap(STFixture.expected()["sharded"])
        var byName: [String: TensorSpec] = [:]
        for shard in try XCTUnwrap(spec["shards"]?.array) {
            for t in try tensorSpecs(shard) { byName[t.name] = t }
        }
        var writer = SafetensorsWriter()
        writer.metadata = try metadataPairs(spec["metadata"])
        for name in try XCTUnwrap(spec["state_dict_order"]?.array).map({ try XCTUnwrap($0.string) }) {
            let t = try XCTUnwrap(byName[name], name)
            try t.raw.withUnsafeBytes { try writer.add(name: t.name, dtype: t.dtype, shape: t.shape, bytes: $0) }
        }
        let dir = try TestFixtures.temporaryDirectory(self)
        let written = try writer.writeCheckpoint(directory: dir, maxShardBytes: XCTUnwrap(spec["max_shard_bytes"]?.int))
        let expectedFiles = try XCTUnwrap(spec["files"]?.array).map { try XCTUnwrap($0.string) }
        XCTAssertEqual(written.map { ($0 as NSString).lastPathComponent }.sorted(), expectedFiles)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), expectedFiles)
        for name in expectedFiles {
            XCTAssertEqual(try STFixture.bytes(of: dir + "/" + name), try STFixture.bytes(of: STFixture.path("sharded/" + name)), name)
        }
    }

    // MARK: A real model

    func testReadsAndReproducesStories260K() throws {
        let path = try TestFixtures.shared("models/stories260K/model.safetensors")
        let spec = try XCTUnwrap(STFixture.expected()["stories260K"])
        let file = try SafetensorsFile(path: path)
        defer { withExtendedLifetime(file) {} }  // views borrow its memory map
        XCTAssertEqual(file.tensorNames.count, 48)
        XCTAssertEqual(file.tensorNames.count, spec["tensor_count"]?.int)
        XCTAssertEqual(file.metadata?.map(\.key), ["format"])
        XCTAssertEqual(file.metadata?.map(\.value), ["pt"])
        XCTAssertEqual(file.tensor("model.embed_tokens.weight")?.shape, [512, 64])
        XCTAssertEqual(file.tensor("model.layers.0.self_attn.k_proj.weight")?.shape, [32, 64])
        for (name, shape) in try XCTUnwrap(spec["shapes"]?.object).pairs {
            XCTAssertEqual(file.tensor(name)?.shape, try XCTUnwrap(shape.array).map { try XCTUnwrap($0.int) }, name)
            XCTAssertEqual(file.tensor(name)?.dtype, .f32, name)
        }
        for (name, bits) in try XCTUnwrap(spec["head_bits"]?.object).pairs {
            let values = try floatArray(XCTUnwrap(file.tensor(name)))
            XCTAssertEqual(values.prefix(8).map(\.bitPattern), try XCTUnwrap(bits.array).map { UInt32(try XCTUnwrap($0.int)) }, name)
        }
        for (name, sum) in try XCTUnwrap(spec["sums"]?.object).pairs {
            let total = try floatArray(XCTUnwrap(file.tensor(name))).reduce(0.0) { $0 + Double($1) }
            let want = try XCTUnwrap(sum.double)
            XCTAssertEqual(total, want, accuracy: 1e-9 * max(1, abs(want)), name)
        }

        // Rewriting every tensor with the file's metadata gives back the identical file.
        var writer = SafetensorsWriter()
        writer.metadata = file.metadata
        for name in file.tensorNames {
            let v = try XCTUnwrap(file.tensor(name))
            try writer.add(name: name, dtype: v.dtype, shape: v.shape, bytes: v.bytes)
        }
        let copy = try TestFixtures.temporaryDirectory(self) + "/model.safetensors"
        try writer.write(to: copy)
        XCTAssertEqual(try STFixture.bytes(of: copy), try STFixture.bytes(of: path))
    }
}
