/// One kind of answer to a request line (PROTOCOL.md, section 3): a value holding what the answer says, and one
/// function writing its members, so that every answer of a kind has the same members in the same order.
protocol Answer {
    /// The request's `id`, echoed as the request wrote it.
    var id: RequestID { get }
    /// The members after `id` and `ok`.
    func writeMembers(into answer: inout JSONObjectWriter)
}

extension Answer {
    /// The answer line: `{"id":..,"ok":true,MEMBERS}` and its newline.
    func write(to writer: inout JSONWriter) {
        // The two members every answer starts with, in two appends (the hot path's answers are mostly these and
        // bytes encoded once per config).
        writer.raw("{\"id\":")
        writer.id(id)
        writer.raw(",\"ok\":true")
        writer.members { writeMembers(into: &$0) }
        writer.raw("}\n")
    }
}

/// The answer to a request that failed: `{"id":..,"ok":false,"error":{"code":..,"message":..}}`.
struct ErrorAnswer {
    var id: RequestID
    var error: ProtocolError

    func write(to writer: inout JSONWriter) {
        writer.object { answer in
            answer.field("id", id)
            answer.field("ok", false)
            answer.object("error") { error in
                error.field("code", self.error.code.rawValue)
                error.field("message", self.error.message)
            }
        }
        writer.newline()
    }
}
