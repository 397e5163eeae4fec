import Glibc
import VariantCore

/// Finds static AWS credentials the way the AWS SDKs begin to: the environment (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`), then the shared credentials file
/// (`AWS_SHARED_CREDENTIALS_FILE`, default `~/.aws/credentials`) and the config file (`AWS_CONFIG_FILE`, default
/// `~/.aws/config`) under the profile `AWS_PROFILE` (default `default`).
///
/// Not supported, each reported as `credentials_unsupported` naming it when it is what is configured: instance
/// metadata (IMDS), ECS/EKS container credentials, web identity, SSO, `credential_process`, `role_arn`.
public struct AWSCredentialResolver: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// - Throws: `ConfigFetchError` `credentials_missing` or `credentials_unsupported`.
    public func resolve() throws(ConfigFetchError) -> SigV4Signer.Credentials {
        let key = value("AWS_ACCESS_KEY_ID")
        let secret = value("AWS_SECRET_ACCESS_KEY")
        if let key, let secret {
            return SigV4Signer.Credentials(
                accessKeyID: key,
                secretAccessKey: secret,
                sessionToken: value("AWS_SESSION_TOKEN")
            )
        }
        if key != nil || secret != nil {
            throw ConfigFetchError(
                .credentialsMissing,
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together; only one is"
            )
        }
        let profile = value("AWS_PROFILE") ?? value("AWS_DEFAULT_PROFILE") ?? "default"
        let home = value("HOME") ?? "/root"
        let credentialsPath = value("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials"
        let configPath = value("AWS_CONFIG_FILE") ?? home + "/.aws/config"
        let fromCredentials = Self.section(profile, in: credentialsPath)
        let fromConfig = Self.section(profile == "default" ? "default" : "profile " + profile, in: configPath)
        for (section, path) in [(fromCredentials, credentialsPath), (fromConfig, configPath)] {
            guard let section else { continue }
            if let key = section["aws_access_key_id"], let secret = section["aws_secret_access_key"] {
                return SigV4Signer.Credentials(
                    accessKeyID: key,
                    secretAccessKey: secret,
                    sessionToken: section["aws_session_token"]
                )
            }
            for unsupported in [
                "credential_process", "sso_session", "sso_start_url", "role_arn", "web_identity_token_file",
            ]
            where section[unsupported] != nil {
                throw ConfigFetchError(
                    .credentialsUnsupported,
                    "profile '\(profile)' in \(path) uses \(unsupported), which variantd does not support; give static keys (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or aws_access_key_id/aws_secret_access_key)"
                )
            }
        }
        for (variable, what) in [
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "ECS container credentials"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "container credentials"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "web identity credentials"),
        ] where value(variable) != nil {
            throw ConfigFetchError(
                .credentialsUnsupported,
                "\(variable) asks for \(what), which variantd does not support; give static keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or \(credentialsPath)"
            )
        }
        throw ConfigFetchError(
            .credentialsMissing,
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or give profile '\(profile)' aws_access_key_id and aws_secret_access_key in \(credentialsPath); instance metadata (IMDS), ECS, SSO and credential_process are not supported"
        )
    }

    private func value(_ name: String) -> String? {
        environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The keys of `[name]` in an INI file, or nil if the file or the section is missing.
    static func section(_ name: String, in path: String) -> [String: String]? {
        guard let bytes = try? FileIdentity.read(path: path, maximumBytes: 1 << 20) else { return nil }
        var current: String?
        var found: [String: String]?
        for rawLine in String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let line = rawLine.trimmingSpaces
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") && line.hasSuffix("]") {
                current = String(line.dropFirst().dropLast()).trimmingSpaces
                if current == name, found == nil { found = [:] }
                continue
            }
            guard current == name, let equals = line.firstIndex(of: "=") else { continue }
            found?[String(line[..<equals]).trimmingSpaces.lowercased()] =
                String(line[line.index(after: equals)...])
                .trimmingSpaces
        }
        return found
    }
}

extension StringProtocol {
    var trimmingSpaces: String {
        String(
            drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" || $0 == "\r" })
                .reversed()
        )
    }
}
