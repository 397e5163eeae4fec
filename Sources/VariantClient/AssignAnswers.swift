import Glibc
import Synchronization
import VariantCore

/// An answer line whose id was the request's, as read: decoded only as far as its caller needs.
struct AnswerLine: Sendable {
    var bytes: [UInt8]
    /// Where the members after the id begin (the `,` after `{"id":N`), when the line starts with the id as the
    /// daemon writes it; nil for a line matched by parsing it.
    var afterID: Int?

    /// The whole answer as a JSON object; nil if it is not one.
    var object: JSONObject? {
        guard case .object(let answer)? = try? JSONParser.parse(bytes) else { return nil }
        return answer
    }

    /// The id the line starts with (`{"id":N,`), and where the members after it begin; nil for any other start.
    static func leadingID(of bytes: [UInt8]) -> (id: Int, afterID: Int)? {
        let prefix: StaticString = #"{"id":"#
        let prefixLength = prefix.utf8CodeUnitCount
        guard bytes.count > prefixLength,
            bytes.withUnsafeBufferPointer({ line in
                UnsafeBufferPointer(start: prefix.utf8Start, count: prefixLength).elementsEqual(line[..<prefixLength])
            })
        else { return nil }
        var id = 0
        var index = prefixLength
        while index < bytes.count, index - prefixLength < 18, (48...57).contains(bytes[index]) {
            id = id * 10 + Int(bytes[index] - 48)
            index += 1
        }
        guard index > prefixLength, index < bytes.count, bytes[index] == UInt8(ascii: ",") else { return nil }
        return (id, index)
    }
}

/// The decoder of `assign` answers, and of a `render` answer's assignment part. An answer's bytes after its id
/// decide the assignment (the unit is not in it), so the assignment of each distinct answer is kept: a service sees
/// a handful (one per variant, reason and config version), and a known answer costs a hash and a comparison of its
/// bytes instead of a JSON parse and an `Assignment` built from it. What is kept came through the same decoding,
/// so both ways give the same assignment (`AssignAnswersTests`).
final class AssignAnswers: Sendable {
    /// The bytes of an answer after its id, compared whole. The hash takes their count and at most their first and
    /// last 64 bytes (the experiment, variant and reason, the prompt version and config version): hashing all of
    /// them was a fifth of an `assign`'s cost in the shim, and answers that differ only elsewhere merely share a
    /// hash, each still told from the other by its bytes.
    struct Key: Hashable, Sendable {
        var bytes: ArraySlice<UInt8>

        func hash(into hasher: inout Hasher) {
            hasher.combine(bytes.count)
            bytes.withUnsafeBytes { raw in
                guard raw.count > 128 else { return hasher.combine(bytes: raw) }
                hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: raw[..<64]))
                hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: raw[(raw.count - 64)...]))
            }
        }

        static func == (lhs: Key, rhs: Key) -> Bool {
            lhs.bytes.count == rhs.bytes.count
                && lhs.bytes.withUnsafeBytes { left in
                    rhs.bytes.withUnsafeBytes { right in
                        left.isEmpty || memcmp(left.baseAddress!, right.baseAddress!, left.count) == 0
                    }
                }
        }
    }

    /// How many distinct answers are kept; the table is emptied when it is full (a new config version's answers
    /// then fill it again).
    let limit: Int
    private let known = Mutex<[Key: VariantClient.Assignment]>([:])

    init(limit: Int = 256) {
        self.limit = limit
    }

    /// The kept assignment for `key`, with `unit` filled in.
    func assignment(_ key: Key, unit: String) -> VariantClient.Assignment? {
        guard var assignment = known.withLock({ $0[key] }) else { return nil }
        assignment.unit = unit
        return assignment
    }

    /// Keeps `assignment` (a daemon's decision, never a fallback) for the answers whose bytes are `key`.
    func keep(_ assignment: VariantClient.Assignment, for key: Key) {
        var kept = assignment
        kept.unit = nil
        known.withLock { known in
            if known.count >= limit { known.removeAll(keepingCapacity: true) }
            known[key] = kept
        }
    }

    var count: Int { known.withLock { $0.count } }
}
