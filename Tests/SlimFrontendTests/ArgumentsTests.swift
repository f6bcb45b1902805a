import XCTest
@testable import SlimFrontend

final class ArgumentsTests: XCTestCase {
    let specs: [OptionSpec] = [
        .option("model", short: "m", value: "DIR", help: "m"),
        .option("ctx", value: "N", help: "c"),
        .option("temp", value: "T", help: "t"),
        .flag("json", help: "j"),
    ]

    func testLongShortAndInlineForms() throws {
        let p = try ParsedArguments(["-m", "a", "--ctx=512", "--json", "--temp", "0.5"], specs: specs)
        XCTAssertEqual(p.string("model"), "a")
        XCTAssertEqual(try p.int("ctx", default: 0), 512)
        XCTAssertEqual(try p.double("temp", default: 1), 0.5)
        XCTAssertTrue(p.has("json"))
    }

    func testUnknownOptionSuggestsNearest() {
        XCTAssertThrowsError(try ParsedArguments(["--modle", "x"], specs: specs)) { e in
            XCTAssertEqual((e as? UsageError)?.message, "unknown option '--modle' (did you mean '--model'?)")
        }
    }

    func testMissingValue() {
        XCTAssertThrowsError(try ParsedArguments(["--model"], specs: specs)) { e in
            XCTAssertEqual((e as? UsageError)?.message, "missing value for '--model DIR'")
        }
        // A following option is not taken as the value.
        XCTAssertThrowsError(try ParsedArguments(["--model", "--json"], specs: specs)) { e in
            XCTAssertEqual((e as? UsageError)?.message, "missing value for '--model DIR'")
        }
    }

    func testBadNumbers() throws {
        let p = try ParsedArguments(["--ctx", "12x", "--temp", "nan"], specs: specs)
        XCTAssertThrowsError(try p.int("ctx", default: 0)) { e in
            XCTAssertEqual((e as? UsageError)?.message, "invalid value for '--ctx': '12x' is not an integer")
        }
        XCTAssertThrowsError(try p.double("temp", default: 0)) { e in
            XCTAssertEqual((e as? UsageError)?.message, "invalid value for '--temp': 'nan' is not a number")
        }
        let q = try ParsedArguments(["--ctx", "0"], specs: specs)
        XCTAssertThrowsError(try q.int("ctx", default: 1, in: 1...4096))
    }

    func testRepeatedAndPositionalAndFlagValue() {
        XCTAssertThrowsError(try ParsedArguments(["--ctx", "1", "--ctx", "2"], specs: specs))
        XCTAssertThrowsError(try ParsedArguments(["stray"], specs: specs))
        XCTAssertThrowsError(try ParsedArguments(["--json=yes"], specs: specs))
        XCTAssertEqual(try ParsedArguments(["--", "-x"], specs: specs, allowsPositionals: true).positionals, ["-x"])
    }
}
