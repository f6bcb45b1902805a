import Foundation
import XCTest
import SlimTestSupport
@testable import SlimIO

/// Sharded checkpoints: round trips, the sharding rule, stale-file cleanup and every index or
/// shard inconsistency.
final class SafetensorsCheckpointTests: XCTestCase {
    /// Ten F32 tensors "t0"... of 16 bytes each plus a 100-byte one in the middle.
    func makeWriter() throws -> SafetensorsWriter {
        var w = SafetensorsWriter()
        w.metadata = [("format", "pt")]
        for i in 0..<10 {
            try w.add(name: "t\(i)", floats: [Float(i), 1, 2, 3], shape: [2, 2], as: .f32)
            if i == 4 { try w.add(name: "big", floats: (0..<25).map(Float.init), shape: [25], as: .f32) }
        }
        return w
    }

    /// A copy of the Python-written sharded fixture in a temporary directory.
    func copyOfPythonCheckpoint() throws -> String {
        let dir = try TestFixtures.temporaryDirectory(self) + "/ckpt"
        try FileManager.default.copyItem(atPath: STFixture.path("sharded"), toPath: dir)
        return dir
    }

    func writeIndex(_ dir: String, _ text: String) throws {
        let path = dir + "/" + SafetensorsCheckpoint.indexFileName
        try? FileManager.default.removeItem(atPath: path)
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
    }

    /// The fixture's index with `edit` applied to its weight map (as ordered pairs).
    func editedIndex(_ dir: String, _ edit: (inout [(String, JSON)]) -> Void) throws -> String {
        let index = try JSON.parse(STFixture.bytes(of: dir + "/" + SafetensorsCheckpoint.indexFileName))
        var pairs = try XCTUnwrap(index["weight_map"]?.object).pairs.map { ($0.key, $0.value) }
        edit(&pairs)
        return JSON.object(JSONObject([("metadata", index["metadata"] ?? .null), ("weight_map", .object(JSONObject(pairs)))]))
            .serialized(pretty: true)
    }

    // MARK: Round trips

    func testShardedRoundTripAndShardingRule() throws {
        let writer = try makeWriter()
        let dir = try TestFixtures.temporaryDirectory(self)
        let written = try writer.writeCheckpoint(directory: dir, maxShardBytes: 48)
        // Added: t0..t4, big, t5..t9. Shards: t0-t2 (48 B) | big (100 B > max: its own shard,
        // emitted while t3-t4 are still open) | t3-t5 | t6-t8 | t9.
        let names = written.map { ($0 as NSString).lastPathComponent }
        XCTAssertEqual(names, (1...5).map { SafetensorsWriter.shardFileName(index: $0, of: 5) } + [SafetensorsCheckpoint.indexFileName])
        let ckpt = try SafetensorsCheckpoint(directory: dir)
        defer { withExtendedLifetime(ckpt) {} }  // views borrow its memory map
        XCTAssertEqual(ckpt.shards.map(\.tensorNames), [["t0", "t1", "t2"], ["big"], ["t3", "t4", "t5"], ["t6", "t7", "t8"], ["t9"]])
        XCTAssertEqual(ckpt.indexMetadata?["total_size"]?.int, 10 * 16 + 100)
        for shard in ckpt.shards { XCTAssertEqual(shard.metadata?.map(\.value), ["pt"]) }
        for i in 0..<10 {
            XCTAssertEqual(try floatArray(XCTUnwrap(ckpt.tensor("t\(i)"))), [Float(i), 1, 2, 3])
        }
        XCTAssertEqual(try floatArray(XCTUnwrap(ckpt.tensor("big"))), (0..<25).map(Float.init))
        XCTAssertEqual(ckpt.tensorNames.count, 11)
    }

    func testSingleFileWhenEverythingFitsAndStaleFilesAreRemoved() throws {
        let writer = try makeWriter()
        let dir = try TestFixtures.temporaryDirectory(self)
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: dir + "/model-notes.txt"))
        try writer.writeCheckpoint(directory: dir, maxShardBytes: 48)
        // Everything fits: one model.safetensors; the earlier shards and index disappear.
        let single = try writer.writeCheckpoint(directory: dir, maxShardBytes: 1 << 20)
        XCTAssertEqual(single, [dir + "/model.safetensors"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).sorted(), ["model-notes.txt", "model.safetensors"])
        let ckpt = try SafetensorsCheckpoint(directory: dir)
        defer { withExtendedLifetime(ckpt) {} }  // views borrow its memory map
        XCTAssertEqual(ckpt.shards.count, 1)
        XCTAssertNil(ckpt.indexMetadata)
        XCTAssertEqual(ckpt.tensorNames.count, 11)
        // And back to shards: model.safetensors disappears.
        try writer.writeCheckpoint(directory: dir, maxShardBytes: 100)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/model.safetensors"))
        XCTAssertEqual(try SafetensorsCheckpoint(directory: dir).tensorNames.count, 11)
    }

    func testWriteCheckpointCreatesTheDirectoryAndHandlesNoTensors() throws {
        let dir = try TestFixtures.temporaryDirectory(self) + "/a/b"
        try SafetensorsWriter().writeCheckpoint(directory: dir, maxShardBytes: 10)
        XCTAssertEqual(try SafetensorsCheckpoint(directory: dir).tensorNames, [])
    }

    func testCheckpointFromFiles() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        var a = SafetensorsWriter(), b = SafetensorsWriter()
        try a.add(name: "x", floats: [1], shape: [1], as: .f32)
        try b.add(name: "y", floats: [2], shape: [], as: .bf16)
        try a.write(to: dir + "/a.safetensors")
        try b.write(to: dir + "/b.safetensors")
        let ckpt = try SafetensorsCheckpoint(files: [dir + "/a.safetensors", dir + "/b.safetensors"])
        defer { withExtendedLifetime(ckpt) {} }  // views borrow its memory map
        XCTAssertEqual(ckpt.tensorNames, ["x", "y"])
        XCTAssertEqual(try floatArray(XCTUnwrap(ckpt.tensor("y"))), [2])
        assertSafetensorsError(
            .duplicateTensor(tensor: "x", firstShard: "a.safetensors", secondShard: "a.safetensors"),
            path: dir + "/a.safetensors"
        ) { _ = try SafetensorsCheckpoint(files: [dir + "/a.safetensors", dir + "/a.safetensors"]) }
        assertSafetensorsError(.noCheckpoint) { _ = try SafetensorsCheckpoint(files: []) }
    }

    // MARK: Directory errors

    func testNoCheckpointAndAmbiguousCheckpoint() throws {
        let dir = try TestFixtures.temporaryDirectory(self)
        assertSafetensorsError(.noCheckpoint, path: dir) { _ = try SafetensorsCheckpoint(directory: dir) }
        let ckpt = try copyOfPythonCheckpoint()
        try FileManager.default.copyItem(atPath: STFixture.path("metadata.safetensors"), toPath: ckpt + "/model.safetensors")
        assertSafetensorsError(.ambiguousCheckpoint, path: ckpt) { _ = try SafetensorsCheckpoint(directory: ckpt) }
    }

    func testInvalidIndex() throws {
        let dir = try copyOfPythonCheckpoint()
        let index = dir + "/" + SafetensorsCheckpoint.indexFileName
        let shard = SafetensorsWriter.shardFileName(index: 1, of: 4)
        for text in ["", "{", "[]", "{\"metadata\":{}}", "{\"weight_map\":[]}", "{\"weight_map\":{}}",
                     "{\"weight_map\":{\"model.big.weight\":1}}",
                     "{\"metadata\":3,\"weight_map\":{\"model.big.weight\":\"\(shard)\"}}"] {
            try writeIndex(dir, text)
            assertSafetensorsError(path: index, { _ = try SafetensorsCheckpoint(directory: dir) }) {
                guard case .invalidIndex = $0 else { return XCTFail("\(text): \($0)") }
            }
        }
    }

    func testShardNamesMustBePlainFileNames() throws {
        let dir = try copyOfPythonCheckpoint()
        for bad in ["../sharded/model-00001-of-00004.safetensors", "/etc/passwd", "sub/x.safetensors", "..", ".", "",
                    "a\\b.safetensors"] {
            try writeIndex(dir, try editedIndex(dir) { $0[0].1 = .string(bad) })
            assertSafetensorsError(.invalidShardName(bad), path: dir + "/" + SafetensorsCheckpoint.indexFileName) {
                _ = try SafetensorsCheckpoint(directory: dir)
            }
        }
    }

    func testMissingShard() throws {
        let dir = try copyOfPythonCheckpoint()
        try FileManager.default.removeItem(atPath: dir + "/" + SafetensorsWriter.shardFileName(index: 3, of: 4))
        assertSafetensorsError(.missingShard(SafetensorsWriter.shardFileName(index: 3, of: 4))) {
            _ = try SafetensorsCheckpoint(directory: dir)
        }
    }

    func testIndexEntriesMustExistInTheirShard() throws {
        let dir = try copyOfPythonCheckpoint()
        let first = SafetensorsWriter.shardFileName(index: 1, of: 4)
        try writeIndex(dir, try editedIndex(dir) { $0.append(("model.ghost", .string(first))) })
        assertSafetensorsError(.tensorNotInShard(tensor: "model.ghost", shard: first)) {
            _ = try SafetensorsCheckpoint(directory: dir)
        }
        // Mapped to the wrong shard.
        try writeIndex(dir, try editedIndex(dir) { pairs in
            pairs.removeAll { $0.0 == "model.ghost" }
            if let i = pairs.firstIndex(where: { $0.0 == "model.scale" }) { pairs[i].1 = .string(first) }
        })
        assertSafetensorsError(.tensorNotInShard(tensor: "model.scale", shard: first)) {
            _ = try SafetensorsCheckpoint(directory: dir)
        }
    }

    func testEveryShardTensorMustBeListed() throws {
        let dir = try copyOfPythonCheckpoint()
        try writeIndex(dir, try editedIndex(dir) { $0.removeAll { $0.0 == "model.layers.0.ids" } })
        assertSafetensorsError(
            .unlistedTensor(tensor: "model.layers.0.ids", shard: SafetensorsWriter.shardFileName(index: 3, of: 4))
        ) { _ = try SafetensorsCheckpoint(directory: dir) }
    }

    func testNoTensorInTwoShards() throws {
        let dir = try copyOfPythonCheckpoint()
        // Rewrite shard 4 so that it also stores model.scale (which shard 3 holds).
        var w = SafetensorsWriter()
        w.metadata = [("format", "pt")]
        try w.add(name: "model.layers.1.w", floats: (0..<120).map { Float($0) / 9 }, shape: [120], as: .f16)
        try w.add(name: "model.scale", floats: [0.25], shape: [], as: .f32)
        let fourth = SafetensorsWriter.shardFileName(index: 4, of: 4)
        try w.write(to: dir + "/" + fourth)
        assertSafetensorsError(
            .duplicateTensor(tensor: "model.scale", firstShard: SafetensorsWriter.shardFileName(index: 3, of: 4), secondShard: fourth),
            path: dir + "/" + fourth
        ) { _ = try SafetensorsCheckpoint(directory: dir) }
    }

    func testCorruptShardReportsTheShardPath() throws {
        let dir = try copyOfPythonCheckpoint()
        let second = dir + "/" + SafetensorsWriter.shardFileName(index: 2, of: 4)
        var bytes = try STFixture.bytes(of: second)
        bytes.removeLast()
        try FileManager.default.removeItem(atPath: second)
        try Data(bytes).write(to: URL(fileURLWithPath: second))
        assertSafetensorsError(path: second, { _ = try SafetensorsCheckpoint(directory: dir) }) {
            guard case .missingBytes = $0 else { return XCTFail("\($0)") }
        }
    }

    func testCheckpointFileNamePattern() {
        for name in ["model.safetensors", "model.safetensors.index.json", "model-00001-of-00002.safetensors",
                     "model-00001-of-00002.safetensors.index.json"] {
            XCTAssertTrue(SafetensorsWriter.isCheckpointFileName(name), name)
        }
        for name in ["model.safetensors.backup", "model-1-of-2.safetensors", "model-0000a-of-00002.safetensors",
                     "mymodel.safetensors", "model-00001-of-00002.safetensors.tmp", "model.json"] {
            XCTAssertFalse(SafetensorsWriter.isCheckpointFileName(name), name)
        }
    }
}
