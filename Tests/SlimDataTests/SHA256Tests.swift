import XCTest

@testable import SlimData

final class SHA256Tests: XCTestCase {
    /// FIPS 180-4 / NIST example vectors.
    func testKnownVectors() {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex([UInt8](repeating: 0x61, count: 1_000_000)),
                       "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    /// Feeding the bytes in uneven pieces gives the same digest as one call (block carry-over
    /// and the 55/56/64-byte padding boundaries).
    func testIncrementalUpdatesAgree() {
        let data = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        for length in [0, 1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 300] {
            let slice = Array(data.prefix(length))
            let whole = SHA256.hex(slice)
            for step in [1, 3, 17, 64, 100] {
                var h = SHA256()
                var i = 0
                while i < slice.count {
                    let piece = Array(slice[i..<min(i + step, slice.count)])
                    piece.withUnsafeBytes { h.update($0) }
                    i += step
                }
                XCTAssertEqual(h.finalize(), whole, "length \(length), step \(step)")
            }
        }
    }
}
