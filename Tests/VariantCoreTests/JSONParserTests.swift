import Testing
@testable import VariantCore

@Suite struct JSONParserTests {
    @Test(arguments: [
        (#"{"a":1,"b":[true,false,null],"c":"x"}"#, #"{"a":1,"b":[true,false,null],"c":"x"}"#),
        (#"  [ 1 , -2.5 , 1e3, 0.1 ]  "#, #"[1,-2.5,1000,0.1]"#),
        (#""\u00e9\ud83d\ude00\n\t\"\\\/""#, "\"é😀\\n\\t\\\"\\\\/\""),
        (#"{"z":1,"a":2}"#, #"{"z":1,"a":2}"#),
        ("-0", "0"),
        ("12345678901234567890", "1.2345678901234567e+19"),
        (#""\u0001""#, #""\u0001""#),
    ])
    func parsesAndWritesBackInTheSameOrder(input: String, expected: String) throws {
        var writer = JSONWriter()
        writer.value(try parseJSON(input))
        #expect(String(decoding: writer.bytes, as: UTF8.self) == expected)
    }

    @Test(arguments: [
        ("", "unexpected end of input", 0),
        ("{", "expected a string key", 1),
        (#"{"a":1,}"#, "expected a string key", 7),
        (#"{"a":1 "b":2}"#, "expected ',' or '}'", 7),
        ("[1,]", "unexpected character", 3),
        ("01", "unexpected data after the JSON value", 1),
        ("1.", "invalid number", 2),
        ("-", "invalid number", 1),
        ("tru", "invalid literal", 0),
        (#""abc"#, "unterminated string", 4),
        ("\"a\u{1}\"", "control character in string", 2),
        (#""\x""#, "invalid escape", 3),
        (#""\ud800""#, "unpaired surrogate", 7),
        (#""\udc00""#, "unpaired surrogate", 7),
        (#"{"a":1,"a":2}"#, #"duplicate key "a""#, 7),
        ("1e999", "number out of range", 0),
        ("{} x", "unexpected data after the JSON value", 3),
    ])
    func rejectsMalformedInputWithItsOffset(input: String, reason: String, offset: Int) {
        #expect(throws: JSONParser.SyntaxError(offset: offset, reason: reason, line: 1, column: offset + 1)) {
            try parseJSON(input)
        }
    }

    /// `invalid_json: … at byte 53` alone sends a person counting bytes; the line and column find it in an editor.
    @Test func anErrorNamesItsLineAndColumnInCharacters() {
        let document = "{\n  \"prompts\": {},\n  \"é\": [1, 2,]\n}"
        #expect(throws: JSONParser.SyntaxError(offset: 33, reason: "unexpected character", line: 3, column: 14)) {
            try parseJSON(document)
        }
        let error = JSONParser.SyntaxError(offset: 33, reason: "unexpected character", line: 3, column: 14)
        #expect(error.description == "unexpected character at line 3, column 14 (byte 33)")
    }

    @Test func rejectsInvalidUTF8InStrings() {
        let bytes: [UInt8] = [0x22, 0xFF, 0xFE, 0x22]
        #expect(throws: JSONParser.SyntaxError.self) { try JSONParser.parse(bytes) }
    }

    /// Strings are scanned 8 bytes at a time: a quote, an escape, a control character or a non-ASCII byte at every
    /// offset of a word, in strings of every length around a few words, parses to what it says (and a raw control
    /// character or invalid UTF-8 fails) wherever it falls.
    @Test func aSpecialByteAtEveryOffsetOfAWordIsSeen() throws {
        let specials: [(json: String, text: String?)] = [
            (#"\""#, "\""), (#"\\"#, "\\"), (#"\n"#, "\n"), (#"\u00e9"#, "é"), ("é", "é"), ("€", "€"),
            ("\u{1}", nil), ("\u{1F}", nil), ("\t", nil),
        ]
        for length in 0...24 {
            for offset in 0...length {
                for special in specials {
                    let before = String(repeating: "a", count: offset)
                    let after = String(repeating: "b", count: length - offset)
                    let json = "[\"" + before + special.json + after + "\"]"
                    let parsed = try? JSONParser.parse(Array(json.utf8))
                    if let text = special.text {
                        #expect(parsed == .array([.string(before + text + after)]), "\(json)")
                    } else {
                        #expect(parsed == nil, "\(json)")
                    }
                }
                var invalid = Array("[\"".utf8) + Array(repeating: UInt8(ascii: "a"), count: offset)
                invalid += [0xC3] + Array(repeating: UInt8(ascii: "b"), count: length - offset) + Array("\"]".utf8)
                #expect((try? JSONParser.parse(invalid)) == nil, "a lone lead byte at \(offset) of \(length)")
            }
        }
    }

    @Test func boundsNestingDepth() throws {
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(throws: JSONParser.SyntaxError.self) { try parseJSON(deep) }
        let allowed = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect(try parseJSON(allowed).arrayValue != nil)
    }

    @Test func integersAreExactAndFractionsAreNot() throws {
        #expect(try parseJSON("9007199254740992").integerValue == 9_007_199_254_740_992)
        #expect(try parseJSON("2.0").integerValue == 2)
        #expect(try parseJSON("2.5").integerValue == nil)
        #expect(try parseJSON("\"2\"").integerValue == nil)
    }

    @Test(arguments: [0, 7, 9, 10, 42, -1, -10, 1_000_000, 9_007_199_254_740_991, Int.max, Int.min])
    func writerWritesIntegersAsSwiftPrintsThem(value: Int) {
        var writer = JSONWriter()
        writer.integer(value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == String(value))
    }

    @Test func writerEscapesEveryControlCharacter() throws {
        for scalar in 0..<0x20 {
            var writer = JSONWriter()
            let text = String(Character(Unicode.Scalar(UInt8(scalar))))
            writer.string(text)
            #expect(try parseJSON(String(decoding: writer.bytes, as: UTF8.self)) == .string(text))
        }
    }
}

@Suite struct JSONParserLargeObjectTests {
    /// Duplicate detection switches to hashing beyond 16 keys, so a 64 KiB line of thousands of keys parses in
    /// linear time, and a duplicate far down is still caught at its offset.
    @Test func findsDuplicatesAmongThousandsOfKeys() throws {
        let keys = (0..<20_000).map { #""k\#($0)":1"# }
        let unique = "{" + keys.joined(separator: ",") + "}"
        #expect(try parseJSON(unique).objectValue?.count == 20_000)
        let duplicated = "{" + keys.joined(separator: ",") + #","k19999":2}"#
        let offset = unique.utf8.count
        #expect(throws: JSONParser.SyntaxError(offset: offset, reason: #"duplicate key "k19999""#, line: 1, column: offset + 1)) {
            try parseJSON(duplicated)
        }
    }

    @Test func canonicallyEquivalentKeysAreDifferentKeys() throws {
        let object = try #require(try parseJSON(#"{"K":1,"\u212a":2}"#).objectValue)
        #expect(object.count == 2)
        #expect(object["K"] == .number(1))
        #expect(object["\u{212A}"] == .number(2))
    }
}
