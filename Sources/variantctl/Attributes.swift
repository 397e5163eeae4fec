import ArgumentParser
import VariantCore

/// Parses repeated `--attribute key=value` options: numbers and true/false become JSON numbers and booleans.
func attributesObject(_ pairs: [String]) throws -> JSONValue {
    var members: [(key: String, value: JSONValue)] = []
    for pair in pairs {
        guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
            throw ValidationError("--attribute takes key=value, not '\(pair)'")
        }
        let key = String(pair[..<equals])
        let text = String(pair[pair.index(after: equals)...])
        let value: JSONValue
        if text == "true" || text == "false" {
            value = .bool(text == "true")
        } else if let number = Double(text), number.isFinite {
            value = .number(number)
        } else {
            value = .string(text)
        }
        members.append((key, value))
    }
    return .object(JSONObject(members))
}

