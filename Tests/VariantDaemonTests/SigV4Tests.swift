import Foundation
import Testing
import VariantCore

@testable import VariantDaemon

/// SigV4 against AWS's published example and against botocore signing the same requests at the same instant.
@Suite struct SigV4Tests {
    static let credentials = SigV4Signer.Credentials(
        accessKeyID: "AKIDEXAMPLE",
        secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    )

    /// The example of the AWS General Reference ("Signature Version 4 signing process", IAM ListUsers,
    /// 2015-08-30T12:36:00Z), whose published signature is 5d672d79....
    @Test func matchesAWSsPublishedExample() {
        let signer = SigV4Signer(credentials: Self.credentials, region: "us-east-1", service: "iam")
        let request = SigV4Signer.Request(
            method: "GET",
            host: "iam.amazonaws.com",
            path: "/",
            query: [("Action", "ListUsers"), ("Version", "2010-05-08")],
            headers: [("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
        )
        let headers = signer.sign(request, at: Timestamp(rfc3339: "2015-08-30T12:36:00Z")!)
        #expect(headers.first { $0.name == "X-Amz-Date" }?.value == "20150830T123600Z")
        #expect(
            headers.first { $0.name == "Authorization" }?.value
                == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        )
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var endpoint: String
        var request: SigV4Signer.Request
        var sessionToken: String?
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(
            name: "StartConfigurationSession",
            endpoint: "https://appconfigdata.eu-west-1.amazonaws.com",
            request: SigV4Signer.Request(
                method: "POST",
                host: "appconfigdata.eu-west-1.amazonaws.com",
                path: "/configurationsessions",
                headers: [("Content-Type", "application/json")],
                body: Array(
                    #"{"ApplicationIdentifier":"checkout","ConfigurationProfileIdentifier":"prompts","EnvironmentIdentifier":"production","RequiredMinimumPollIntervalInSeconds":30}"#
                        .utf8
                )
            )
        ),
        Case(
            name: "GetLatestConfiguration with a session token",
            endpoint: "https://appconfigdata.eu-west-1.amazonaws.com",
            request: SigV4Signer.Request(
                method: "GET",
                host: "appconfigdata.eu-west-1.amazonaws.com",
                path: "/configuration",
                query: [("configuration_token", "AYADeNgfsRxdKiJ37A+/token==")]
            ),
            sessionToken: "IQoJb3JpZ2luX2VjE//session+token="
        ),
        Case(
            name: "a port, several query parameters and a header with inner spaces",
            endpoint: "http://127.0.0.1:8123",
            request: SigV4Signer.Request(
                method: "GET",
                host: "127.0.0.1:8123",
                path: "/a path/x~y",
                query: [("b", "2"), ("a", "z z"), ("a", "y")],
                headers: [("X-Custom", "  one   two  "), ("User-Agent", "variantd")]
            )
        ),
    ]

    @Test(arguments: cases)
    func agreesWithBotocoreByteForByte(_ testCase: Case) throws {
        var credentials = Self.credentials
        credentials.sessionToken = testCase.sessionToken
        let signer = SigV4Signer(credentials: credentials, region: "eu-west-1", service: "appconfig")
        let time = Timestamp(rfc3339: "2026-11-23T09:30:05Z")!
        let ours = signer.sign(testCase.request, at: time)

        let query = testCase.request.encodedQuery
        let pathURL = SigV4Signer.encode(testCase.request.path, keepingSlashes: true)
        let input: [String: Any] = [
            "method": testCase.request.method,
            "url": testCase.endpoint + pathURL + (query.isEmpty ? "" : "?" + query),
            "headers": Dictionary(uniqueKeysWithValues: testCase.request.headers.map { ($0.name, $0.value) }),
            "body": String(decoding: testCase.request.body, as: UTF8.self),
            "key": credentials.accessKeyID, "secret": credentials.secretAccessKey,
            "token": credentials.sessionToken.map { $0 as Any } ?? NSNull(),
        ]
        let theirs = try botocoreSign(input)
        #expect(theirs["X-Amz-Date"] == ours.first { $0.name == "X-Amz-Date" }?.value)
        #expect(theirs["X-Amz-Security-Token"] == ours.first { $0.name == "X-Amz-Security-Token" }?.value)
        let authorization = try #require(ours.first { $0.name == "Authorization" }?.value)
        #expect(theirs["Authorization"] == authorization)
    }

    /// Runs botocore's SigV4Auth (service appconfig, region eu-west-1) at 2026-11-23T09:30:05Z.
    func botocoreSign(_ input: [String: Any]) throws -> [String: String] {
        let script = """
            import datetime, json, sys
            import botocore.auth as auth
            from botocore.awsrequest import AWSRequest
            from botocore.credentials import Credentials
            auth.get_current_datetime = lambda *a, **k: datetime.datetime(2026, 11, 23, 9, 30, 5)
            given = json.load(sys.stdin)
            request = AWSRequest(method=given["method"], url=given["url"], headers=given["headers"],
                                 data=given["body"].encode() if given["body"] else None)
            auth.SigV4Auth(Credentials(given["key"], given["secret"], given["token"]), "appconfig", "eu-west-1").add_auth(request)
            json.dump({k: v for k, v in request.headers.items()}, sys.stdout)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script]
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: input))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw FixtureError("botocore failed: \(errors)") }
        return try #require(try JSONSerialization.jsonObject(with: output) as? [String: String])
    }
}

@Suite struct AWSCredentialTests {
    func write(_ text: String) throws -> String {
        let directory = try temporaryDirectory("variantd-aws")
        try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/file"))
        return directory + "/file"
    }

    @Test func theEnvironmentComesFirst() throws {
        let resolver = AWSCredentialResolver(environment: [
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        ])
        #expect(try resolver.resolve() == .init(accessKeyID: "AKID", secretAccessKey: "secret", sessionToken: "token"))
    }

    @Test func theSharedCredentialsFileUnderTheProfile() throws {
        let path = try write(
            """
            # comment
            [default]
            aws_access_key_id=AKIDDEFAULT
            aws_secret_access_key=s1

            [ other ]
            aws_access_key_id = AKIDOTHER
            aws_secret_access_key = s2\r
            """
        )
        let base = ["AWS_SHARED_CREDENTIALS_FILE": path, "AWS_CONFIG_FILE": "/nonexistent"]
        #expect(try AWSCredentialResolver(environment: base).resolve().accessKeyID == "AKIDDEFAULT")
        let other = try AWSCredentialResolver(environment: base.merging(["AWS_PROFILE": "other"]) { $1 }).resolve()
        #expect(other == .init(accessKeyID: "AKIDOTHER", secretAccessKey: "s2"))
    }

    @Test func unsupportedProvidersAreNamed() throws {
        let config = try write(
            """
            [profile sso]
            sso_start_url = https://example.awsapps.com/start
            [profile process]
            credential_process = /usr/bin/get-creds
            """
        )
        for (profile, named) in [("sso", "sso_start_url"), ("process", "credential_process")] {
            let resolver = AWSCredentialResolver(environment: [
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": config, "AWS_PROFILE": profile,
            ])
            let error = try #require(throws: ConfigFetchError.self) { try resolver.resolve() }
            #expect(error.code == .credentialsUnsupported)
            #expect(error.message.contains(named))
        }
        let ecs = AWSCredentialResolver(environment: [
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
        ])
        #expect(throws: ConfigFetchError.self) { try ecs.resolve() }
        #expect((try? ecs.resolve()) == nil)
    }

    @Test func nothingConfiguredSaysWhatToSetAndWhatIsNotSupported() throws {
        let resolver = AWSCredentialResolver(environment: [
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
        ])
        let error = try #require(throws: ConfigFetchError.self) { try resolver.resolve() }
        #expect(error.code == .credentialsMissing)
        #expect(error.message.contains("AWS_ACCESS_KEY_ID") && error.message.contains("instance metadata"))
        let half = AWSCredentialResolver(environment: ["AWS_ACCESS_KEY_ID": "AKID"])
        #expect((try? half.resolve()) == nil)
    }

    @Test func appConfigURLs() throws {
        let location = try AppConfigFetcher.Location.parse(
            "appconfig://checkout/production/prompts?region=eu-west-1",
            environment: [:]
        )
        #expect(location.endpoint == "https://appconfigdata.eu-west-1.amazonaws.com")
        #expect(location.host == "appconfigdata.eu-west-1.amazonaws.com")
        let local = try AppConfigFetcher.Location.parse(
            "appconfig://a/e/p?endpoint=http://127.0.0.1:9000/",
            environment: ["AWS_REGION": "us-east-2"]
        )
        #expect(local.region == "us-east-2")
        #expect(local.host == "127.0.0.1:9000")
        #expect(throws: AppConfigFetcher.Location.ParseError.self) {
            try AppConfigFetcher.Location.parse("appconfig://a/e/p", environment: [:])
        }
    }
}
