import Glibc

/// Where Langfuse prompts come from (docs/langfuse.md): the base URL, the keys, the label TTL and
/// the fallback file.
///
/// | key | type | default |
/// |---|---|---|
/// | `url` | `http(s)://` base URL | `LANGFUSE_HOST`, else `LANGFUSE_BASE_URL`, else `https://cloud.langfuse.com` |
/// | `credentialsFile` | path of `KEY=VALUE` lines | none |
/// | `labelTTL` | seconds | 60 |
/// | `fallbackPath` | path of a JSON array of prompts in the API's shape | none |
///
/// The keys are `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` from the environment, which win over the same
/// names in the credentials file (as flags win over the environment, which wins over files). The file may also
/// set `LANGFUSE_HOST`. Lines are `NAME=VALUE`, optionally quoted; `#` starts a comment line.
public struct LangfuseSettings: Sendable {
    public var url: String?
    public var credentialsFile: String?
    public var labelTTL: Duration = .seconds(60)
    public var fallbackPath: String?

    public init() {}

    public static let defaultURL = "https://cloud.langfuse.com"

    /// The base URL and keys this daemon uses.
    ///
    /// - Throws: `ConfigSourceOptions.Invalid` for an unreadable or malformed credentials file, half a key pair,
    ///   or a URL that is not `http(s)://`.
    public func resolved(environment: [String: String]) throws(ConfigSourceOptions.Invalid) -> (
        baseURL: String, credentials: LangfuseClient.Credentials?
    ) {
        var file: [String: String] = [:]
        if let credentialsFile { file = try Self.readCredentials(credentialsFile) }
        func value(_ name: String) -> String? {
            environment[name].flatMap { $0.isEmpty ? nil : $0 } ?? file[name].flatMap { $0.isEmpty ? nil : $0 }
        }
        let baseURL = url ?? value("LANGFUSE_HOST") ?? value("LANGFUSE_BASE_URL") ?? Self.defaultURL
        guard baseURL.hasPrefix("http://") || baseURL.hasPrefix("https://") else {
            throw ConfigSourceOptions.Invalid(
                description: "--langfuse-url: '\(baseURL)' is not an http:// or https:// URL")
        }
        switch (value("LANGFUSE_PUBLIC_KEY"), value("LANGFUSE_SECRET_KEY")) {
        case (let publicKey?, let secretKey?):
            return (baseURL, .init(publicKey: publicKey, secretKey: secretKey))
        case (nil, nil):
            return (baseURL, nil)
        case (nil, _):
            throw ConfigSourceOptions.Invalid(description: "Langfuse: LANGFUSE_SECRET_KEY is set but not LANGFUSE_PUBLIC_KEY")
        case (_, nil):
            throw ConfigSourceOptions.Invalid(description: "Langfuse: LANGFUSE_PUBLIC_KEY is set but not LANGFUSE_SECRET_KEY")
        }
    }

    /// Checks every setting, so that a mistake stops the daemon at start with a clear message.
    ///
    /// - Throws: `ConfigSourceOptions.Invalid`.
    public func validate(environment: [String: String]) throws(ConfigSourceOptions.Invalid) {
        _ = try resolved(environment: environment)
        guard labelTTL >= .milliseconds(1), labelTTL <= .seconds(86_400) else {
            throw ConfigSourceOptions.Invalid(
                description: "--langfuse-label-ttl must be a positive number of seconds, at most a day")
        }
        if let fallbackPath, access(fallbackPath, R_OK) != 0 {
            throw ConfigSourceOptions.Invalid(
                description: "--langfuse-fallback: cannot read \(fallbackPath): \(String(cString: strerror(errno)))")
        }
    }

    static func readCredentials(_ path: String) throws(ConfigSourceOptions.Invalid) -> [String: String] {
        let bytes: [UInt8]
        do {
            bytes = try FileIdentity.read(path: path, maximumBytes: 65536)
        } catch {
            throw ConfigSourceOptions.Invalid(description: "--langfuse-credentials: cannot read \(path): \(error)")
        }
        var values: [String: String] = [:]
        for (index, rawLine) in String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            .enumerated()
        {
            var line = Substring(rawLine)
            while line.first == " " || line.first == "\t" { line.removeFirst() }
            while line.last == " " || line.last == "\t" || line.last == "\r" { line.removeLast() }
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line.removeFirst("export ".count) }
            guard let equals = line.firstIndex(of: "=") else {
                throw ConfigSourceOptions.Invalid(
                    description: "--langfuse-credentials: \(path) line \(index + 1) is not NAME=VALUE")
            }
            let name = String(line[..<equals]).trimmingSpaces
            var value = Substring(line[line.index(after: equals)...])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = value.dropFirst().dropLast()
            }
            guard ["LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST", "LANGFUSE_BASE_URL"].contains(name) else {
                throw ConfigSourceOptions.Invalid(
                    description:
                        "--langfuse-credentials: \(path) line \(index + 1): unknown name '\(name)' (LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST)"
                )
            }
            values[name] = String(value)
        }
        return values
    }
}

extension String {
    fileprivate var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " || text.first == "\t" { text.removeFirst() }
        while text.last == " " || text.last == "\t" { text.removeLast() }
        return String(text)
    }
}
