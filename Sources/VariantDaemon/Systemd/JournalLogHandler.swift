import CSystemd
import Foundation
import Glibc
import Logging

/// A swift-log backend that writes each message to the systemd journal as one structured entry
/// (`sd_journal_sendv(3)`), so `journalctl -u variantd EXPERIMENT=checkout-prompt` finds it.
///
/// Fields: `MESSAGE`, `PRIORITY` (syslog levels), `SYSLOG_IDENTIFIER`, `CODE_FILE`, `CODE_LINE`, `CODE_FUNC`,
/// `LOGGER_LABEL`, and every metadata key as a field named by `JournalFields.fieldName(forMetadataKey:)`
/// (`config.version` becomes `CONFIG_VERSION`). If the journal refuses an entry, the line goes to standard error.
public struct JournalLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let identifier: String

    public init(label: String, identifier: String = "variantd", metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.identifier = identifier
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let own = event.metadata { merged.merge(own) { _, new in new } }
        let fields = JournalFields.entry(
            level: event.level, message: event.message.description, metadata: merged, identifier: identifier,
            label: label, file: event.file, function: event.function, line: event.line)
        if JournalFields.send(fields) < 0 {
            // No journal to take it (journald stopped, or `--log-format journal` outside systemd): keep the line.
            let extra = fields.dropFirst(7).map { " \($0.name)=\($0.value)" }.joined()
            let text = Array("\(event.level) \(label): \(event.message)\(extra)\n".utf8)
            _ = text.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
        }
    }
}

/// How log entries become journal fields: pure functions, tested without a journal.
public enum JournalFields {
    /// Fields the handler sets itself; a metadata key that maps to one of these gets a `META_` prefix instead of
    /// replacing it.
    static let reserved: Set<String> = [
        "MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY", "SYSLOG_PID", "SYSLOG_TIMESTAMP",
        "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO", "LOGGER_LABEL", "INVOCATION_ID", "USER_INVOCATION_ID",
    ]

    /// The journal field name for a swift-log metadata key, or nil when nothing usable is left.
    ///
    /// journald accepts names of at most 64 characters from `A-Z`, `0-9` and `_`, not starting with a digit or
    /// `_` (those are trusted fields it adds itself): letters are upper-cased, every other character becomes `_`
    /// (runs collapse to one), leading and trailing `_` are dropped, a leading digit gets an `F_` prefix, and
    /// reserved names a `META_` prefix. `config.version` → `CONFIG_VERSION`, `experiment` → `EXPERIMENT`.
    public static func fieldName(forMetadataKey key: String) -> String? {
        var name: [UInt8] = []
        for byte in key.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"): name.append(byte - 32)
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"): name.append(byte)
            default:
                if let last = name.last, last != UInt8(ascii: "_") { name.append(UInt8(ascii: "_")) }
            }
        }
        while name.last == UInt8(ascii: "_") { name.removeLast() }
        guard let first = name.first else { return nil }
        var text = String(decoding: name, as: UTF8.self)
        if first >= UInt8(ascii: "0") && first <= UInt8(ascii: "9") { text = "F_" + text }
        if reserved.contains(text) { text = "META_" + text }
        return String(text.prefix(64))
    }

    /// The syslog priority journald stores for a swift-log level (`PRIORITY=`).
    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: 7
        case .info: 6
        case .notice: 5
        case .warning: 4
        case .error: 3
        case .critical: 2
        }
    }

    /// Every field of one entry, in a fixed order: the handler's own, then metadata sorted by field name. Two
    /// metadata keys that map to the same name keep the first in key order.
    public static func entry(
        level: Logger.Level, message: String, metadata: Logger.Metadata, identifier: String, label: String,
        file: String, function: String, line: UInt
    ) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = [
            ("MESSAGE", message),
            ("PRIORITY", String(priority(level))),
            ("SYSLOG_IDENTIFIER", identifier),
            ("CODE_FILE", file),
            ("CODE_LINE", String(line)),
            ("CODE_FUNC", function),
            ("LOGGER_LABEL", label),
        ]
        var seen = Set<String>()
        var extra: [(name: String, value: String)] = []
        for key in metadata.keys.sorted() {
            guard let name = fieldName(forMetadataKey: key), seen.insert(name).inserted, let value = metadata[key]
            else { continue }
            extra.append((name, render(value)))
        }
        fields += extra.sorted { $0.name < $1.name }
        return fields
    }

    /// A metadata value as journal text: strings as they are, lists and dictionaries as swift-log prints them.
    static func render(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): convertible.description
        case .array, .dictionary: value.description
        }
    }

    /// Sends one entry; returns `sd_journal_sendv`'s result (negative errno on failure).
    @discardableResult
    static func send(_ fields: [(name: String, value: String)]) -> Int32 {
        var bytes: [UInt8] = []
        var ranges: [Range<Int>] = []
        for field in fields {
            let start = bytes.count
            bytes.append(contentsOf: field.name.utf8)
            bytes.append(UInt8(ascii: "="))
            bytes.append(contentsOf: field.value.utf8)
            ranges.append(start..<bytes.count)
        }
        return bytes.withUnsafeMutableBytes { raw in
            let vectors = ranges.map { range in
                iovec(iov_base: raw.baseAddress! + range.lowerBound, iov_len: range.count)
            }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
    }
}

/// Where logs go: the journal with structured fields, or plain text on standard error.
public enum LogFormat: String, Sendable, CaseIterable {
    /// The journal when standard error is connected to it (`JOURNAL_STREAM` names stderr's device and inode),
    /// text otherwise.
    case auto
    case journal
    case text

    /// What `auto` means for this process.
    public func resolved() -> LogFormat {
        guard self == .auto else { return self }
        var info = stat()
        guard fstat(STDERR_FILENO, &info) == 0 else { return .text }
        let stream = getenv("JOURNAL_STREAM").map { String(cString: $0) }
        return Self.journalStream(stream, matchesDevice: UInt64(info.st_dev), inode: UInt64(info.st_ino))
            ? .journal : .text
    }

    /// Whether a `JOURNAL_STREAM` value (`DEVICE:INODE`, decimal) names this device and inode: systemd sets it
    /// for a service whose stdout or stderr goes to the journal, and a child whose stderr was redirected
    /// elsewhere inherits a value that no longer matches.
    public static func journalStream(_ value: String?, matchesDevice device: UInt64, inode: UInt64) -> Bool {
        guard let value else { return false }
        let parts = value.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let streamDevice = UInt64(parts[0]), let streamInode = UInt64(parts[1]) else {
            return false
        }
        return streamDevice == device && streamInode == inode
    }
}

extension LogFormat {
    /// Bootstraps swift-log for a `main` (the daemon's and the judge's): journal entries with fields, or plain
    /// lines on standard error, at `level`. `auto` is resolved here.
    public func bootstrapLogging(level: Logger.Level) {
        let format = resolved()
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler =
                format == .journal ? JournalLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// The process's environment, for the options of the daemon's and the judge's `main`s.
public enum Environment {
    /// A variable's value; nil when unset or empty.
    public static func string(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `path` made absolute against the working directory.
    public static func absolutePath(_ path: String) -> String {
        path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }
}
