import Testing
@testable import VariantCore

/// The request decoder's members: a key is found by its exact bytes, and the field an op does not take that is
/// reported is the first in the line, whether the protocol knows its key or not.
@Suite struct RequestMembersTests {
    @Test(arguments: RequestMembers.Key.allCases)
    func everyKeyIsFoundByItsSpellingAndByNothingNearIt(key: RequestMembers.Key) {
        let spelling = Array(key.name.utf8)
        #expect(keyNamed(spelling) == key)
        #expect(RequestMembers.Key.allCases.count == RequestMembers.Key.count)
        var near: [[UInt8]] = [Array(spelling.dropLast()), spelling + [UInt8(ascii: "s")], [UInt8(ascii: "_")] + spelling]
        for index in spelling.indices {
            var changed = spelling
            changed[index] ^= 0x20  // the case flipped (or '_' made '\x7f')
            near.append(changed)
        }
        for name in near {
            #expect(keyNamed(name) == nil, "\(String(decoding: name, as: UTF8.self))")
        }
    }

    @Test func aNameCanonicallyEquivalentToAKeyIsNotTheKey() {
        // "K" and the Kelvin sign are equal Strings; keys compare by bytes.
        #expect(keyNamed(Array("\u{212A}".utf8)) == nil)
        #expect(keyNamed([]) == nil)
    }

    @Test(arguments: [
        (#"{"op":"assign","zeta":1,"variant":"v"}"#, "zeta"),
        (#"{"op":"assign","variant":"v","zeta":1}"#, "variant"),
        (#"{"variables":{},"op":"assign","zeta":1}"#, "variables"),
        (#"{"op":"assign","experiment":"e"}"#, nil),
    ] as [(String, String?)])
    func theFieldReportedAsNotTakenIsTheFirstInTheLine(line: String, reported: String?) throws {
        let bytes = Array(line.utf8)
        let (root, _) = try bytes.withUnsafeBufferPointer { try JSONParser.parseRequest(buffer: $0) }
        guard case .object(let object) = root else { Issue.record("not an object"); return }
        let members = RequestMembers(object)
        #expect(members.firstMember(notIn: RequestMembers.Keys([.id, .op, .experiment, .unit, .attributes])) == reported)
    }

    private func keyNamed(_ name: [UInt8]) -> RequestMembers.Key? {
        name.withUnsafeBufferPointer { RequestMembers.Key(utf8: $0) }
    }
}
