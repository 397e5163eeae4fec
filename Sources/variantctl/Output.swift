import Glibc
import VariantCore

func printError(_ message: String) {
    var standardError = StandardError()
    print(message, to: &standardError)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        let bytes = Array(string.utf8)
        _ = bytes.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }
}

/// Renders an answer's fields as `key: value` lines for people.
func printFields(_ object: JSONObject, skipping skipped: Set<String> = ["id", "ok"]) {
    for member in object.members where !skipped.contains(member.key) {
        print("\(member.key): \(render(member.value))")
    }
}

/// A value as a person reads it: strings bare, null as `-`, anything else as compact JSON.
func render(_ value: JSONValue) -> String {
    switch value {
    case .string(let text): return text
    case .null: return "-"
    default:
        var writer = JSONWriter()
        writer.value(value)
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}

/// A terminal table: a header row, columns padded to their widest cell, the last column left ragged.
struct Table {
    var headers: [String]
    var rows: [[String]] = []

    init(_ headers: String...) {
        self.headers = headers
    }

    mutating func add(_ cells: [String]) {
        rows.append(cells.map { $0.replacingNewlines() })
    }

    func rendered() -> String {
        let all = [headers] + rows
        var widths = [Int](repeating: 0, count: headers.count)
        for row in all {
            for (column, cell) in row.enumerated() where column < widths.count {
                widths[column] = max(widths[column], cell.count)
            }
        }
        return all.map { row in
            row.enumerated().map { column, cell in
                column == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[column] - cell.count)
            }.joined(separator: "  ")
        }.joined(separator: "\n")
    }
}

extension String {
    fileprivate func replacingNewlines() -> String {
        String(map { $0 == "\n" || $0 == "\r" || $0 == "\t" ? " " : $0 })
    }
}
