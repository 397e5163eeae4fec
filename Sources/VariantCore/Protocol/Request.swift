/// A request line, parsed and checked: the `id` to echo and what is asked.
public struct Request: Sendable {
    public enum Operation: Sendable {
        case assign(experiment: String, unit: String, attributes: JSONObject)
        case prompt(PromptQuery)
        case config
        case health
    }

    /// What a `prompt` request asks for.
    public enum PromptQuery: Sendable, Equatable {
        case version(prompt: String, version: Int)
        case latest(prompt: String)
        case assigned(experiment: String, unit: String, attributes: JSONObject, prompt: String?)
    }

    public var id: JSONValue
    public var operation: Operation

    /// The longest unit id accepted, in UTF-8 bytes.
    public static let maximumUnitBytes = 1024

    /// Parses a request line (without its newline).
    /// - Throws: `Request.Failure`, which carries the `id` when it could be read, so the error answer echoes it.
    public static func parse(_ line: UnsafeBufferPointer<UInt8>) throws(Failure) -> Request {
        let root: JSONValue
        do {
            root = try JSONParser.parse(buffer: line)
        } catch {
            throw Failure(id: .null, error: ProtocolError(.invalidJSON, "the line is not valid JSON: \(error)"))
        }
        guard case .object(let object) = root else {
            throw Failure(id: .null, error: ProtocolError(.invalidRequest, "a request is a JSON object, found \(root.typeName)"))
        }
        let id = object["id"] ?? .null
        do {
            return Request(id: id, operation: try operation(object))
        } catch {
            switch id {
            case .null, .string, .number: throw Failure(id: id, error: error)
            default: throw Failure(id: .null, error: error)
            }
        }
    }

    /// A request that could not be parsed, with the id to echo.
    public struct Failure: Error, Sendable {
        public var id: JSONValue
        public var error: ProtocolError
    }

    private static let assignFields = ["id", "op", "experiment", "unit", "attributes"]
    private static let promptFields = ["id", "op", "prompt", "version", "experiment", "unit", "attributes"]
    private static let bareFields = ["id", "op"]

    private static func operation(_ object: JSONObject) throws(ProtocolError) -> Operation {
        switch object["id"] {
        case nil, .null?, .string?, .number?: break
        case let other?: throw ProtocolError(.invalidField, "'id' must be a string, a number or null, found \(other.typeName)")
        }
        let fields = Fields(object)
        let op = try fields.string("op")
        // Ops are ASCII, and a non-ASCII op must not match one by canonical equivalence.
        switch op.utf8.allSatisfy({ $0 < 0x80 }) ? op : "" {
        case "assign":
            try fields.rejectUnknown(allowed: Self.assignFields)
            return .assign(
                experiment: try fields.string("experiment"), unit: try fields.unit(),
                attributes: try fields.attributes())
        case "prompt":
            try fields.rejectUnknown(allowed: Self.promptFields)
            if let experiment = try fields.optionalString("experiment") {
                if object["version"] != nil {
                    throw ProtocolError(.invalidField, "'version' cannot be combined with 'experiment': the unit's assignment decides the version")
                }
                return .prompt(.assigned(
                    experiment: experiment, unit: try fields.unit(), attributes: try fields.attributes(),
                    prompt: try fields.optionalString("prompt")))
            }
            for key in ["unit", "attributes"] where object[key] != nil {
                throw ProtocolError(.invalidField, "'\(key)' is only taken together with 'experiment'")
            }
            let prompt = try fields.string("prompt")
            if let version = try fields.optionalVersion() {
                return .prompt(.version(prompt: prompt, version: version))
            }
            return .prompt(.latest(prompt: prompt))
        case "config":
            try fields.rejectUnknown(allowed: Self.bareFields)
            return .config
        case "health":
            try fields.rejectUnknown(allowed: Self.bareFields)
            return .health
        default:
            throw ProtocolError(.unknownOp, "unknown op '\(op)' (known: assign, prompt, config, health)")
        }
    }
}

/// Typed access to a request's fields, with the protocol's error codes.
private struct Fields {
    let object: JSONObject

    init(_ object: JSONObject) { self.object = object }

    func rejectUnknown(allowed: [String]) throws(ProtocolError) {
        for member in object.members where !allowed.contains(where: { $0.hasSameUTF8(as: member.key) }) {
            throw ProtocolError(.unknownField, "unknown field '\(member.key)'")
        }
    }

    func optionalString(_ key: String) throws(ProtocolError) -> String? {
        guard let value = object[key] else { return nil }
        guard case .string(let text) = value else {
            throw ProtocolError(.invalidField, "'\(key)' must be a string, found \(value.typeName)")
        }
        return text
    }

    func string(_ key: String) throws(ProtocolError) -> String {
        guard let text = try optionalString(key) else { throw ProtocolError(.missingField, "'\(key)' is required") }
        return text
    }

    func unit() throws(ProtocolError) -> String {
        let unit = try string("unit")
        let length = unit.utf8.count
        guard length >= 1, length <= Request.maximumUnitBytes else {
            throw ProtocolError(.invalidField, "'unit' must be 1 to \(Request.maximumUnitBytes) bytes, found \(length)")
        }
        guard !unit.utf8.contains(0) else { throw ProtocolError(.invalidField, "'unit' must not contain NUL") }
        return unit
    }

    func attributes() throws(ProtocolError) -> JSONObject {
        guard let value = object["attributes"] else { return JSONObject() }
        guard case .object(let attributes) = value else {
            throw ProtocolError(.invalidField, "'attributes' must be an object, found \(value.typeName)")
        }
        for member in attributes.members where !member.value.isScalar {
            throw ProtocolError(.invalidField, "attribute '\(member.key)' must be a string, number or boolean, found \(member.value.typeName)")
        }
        return attributes
    }

    func optionalVersion() throws(ProtocolError) -> Int? {
        guard let value = object["version"] else { return nil }
        guard let version = value.integerValue, version >= 1 else {
            throw ProtocolError(.invalidField, "'version' must be an integer of 1 or more")
        }
        return version
    }
}
