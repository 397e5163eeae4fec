import Foundation
import Glibc
import Logging
import Testing
import VariantCore
import VariantDaemon

/// How log entries become journal fields, and where logs go.
@Suite struct SystemdJournalFieldTests {
    @Test(arguments: [
        ("config.version", "CONFIG_VERSION"),
        ("experiment", "EXPERIMENT"),
        ("variant", "VARIANT"),
        ("code", "CODE"),
        ("config.source", "CONFIG_SOURCE"),
        ("connections.limit", "CONNECTIONS_LIMIT"),
        ("Mixed-Case key", "MIXED_CASE_KEY"),
        ("a..b__c", "A_B_C"),
        ("_private", "PRIVATE"),
        ("trailing.", "TRAILING"),
        ("9lives", "F_9LIVES"),
        ("ünïcode", "N_CODE"),
        ("message", "META_MESSAGE"),
        ("priority", "META_PRIORITY"),
        ("code.file", "META_CODE_FILE"),
        ("syslog_identifier", "META_SYSLOG_IDENTIFIER"),
    ])
    func metadataKeysBecomeJournalFieldNames(key: String, expected: String) {
        #expect(JournalFields.fieldName(forMetadataKey: key) == expected)
    }

    @Test(arguments: ["", "...", "_", "ü", "-"])
    func keysWithNothingUsableAreDropped(key: String) {
        #expect(JournalFields.fieldName(forMetadataKey: key) == nil)
    }

    @Test func fieldNamesFollowJournaldsRules() {
        let keys = ["x", String(repeating: "long.key.", count: 20), "0", "_0_", "MESSAGE", "a b\tc\nd", "é.x"]
        for key in keys {
            guard let name = JournalFields.fieldName(forMetadataKey: key) else { continue }
            #expect(name.count <= 64, "\(name)")
            #expect(name.utf8.allSatisfy { ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == 95 }, "\(name)")
            #expect(name.first != "_" && !(name.first?.isNumber ?? true), "\(name)")
        }
    }

    @Test func levelsMapToSyslogPriorities() {
        let expected: [Logger.Level: Int] = [
            .trace: 7, .debug: 7, .info: 6, .notice: 5, .warning: 4, .error: 3, .critical: 2,
        ]
        for (level, priority) in expected {
            #expect(JournalFields.priority(level) == priority)
        }
    }

    @Test func anEntryCarriesTheMessageSourceAndMetadata() {
        let fields = JournalFields.entry(
            level: .error, message: "config.rejected: 2 problems",
            metadata: [
                "config.version": "sha256:0011223344556677", "experiment": "checkout-prompt", "code": "invalid_config",
                "message": "shadow", "problems": .array(["a", "b"]),
            ],
            identifier: "variantd", label: "variantd", file: "Sources/X.swift", function: "load(force:)", line: 42)
        let names = fields.map(\.name)
        #expect(
            names == [
                "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "LOGGER_LABEL",
                "CODE", "CONFIG_VERSION", "EXPERIMENT", "META_MESSAGE", "PROBLEMS",
            ])
        let values = Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
        #expect(values["MESSAGE"] == "config.rejected: 2 problems")
        #expect(values["PRIORITY"] == "3")
        #expect(values["CODE_LINE"] == "42")
        #expect(values["CONFIG_VERSION"] == "sha256:0011223344556677")
        #expect(values["META_MESSAGE"] == "shadow")
        #expect(values["PROBLEMS"] == #"["a", "b"]"#)
    }

    @Test func keysThatCollideKeepTheFirstInKeyOrder() {
        let fields = JournalFields.entry(
            level: .info, message: "m", metadata: ["config.version": "dotted", "config_version": "underscored"],
            identifier: "variantd", label: "l", file: "f", function: "g", line: 1)
        #expect(fields.filter { $0.name == "CONFIG_VERSION" }.map(\.value) == ["dotted"])
    }

    @Test func journalStreamMustNameStandardErrorsDeviceAndInode() {
        #expect(LogFormat.journalStream("2049:123456", matchesDevice: 2049, inode: 123456))
        #expect(!LogFormat.journalStream("2049:123457", matchesDevice: 2049, inode: 123456))
        #expect(!LogFormat.journalStream("2048:123456", matchesDevice: 2049, inode: 123456))
        #expect(!LogFormat.journalStream(nil, matchesDevice: 2049, inode: 123456))
        #expect(!LogFormat.journalStream("", matchesDevice: 0, inode: 0))
        #expect(!LogFormat.journalStream("2049", matchesDevice: 2049, inode: 0))
        #expect(!LogFormat.journalStream("x:y", matchesDevice: 0, inode: 0))
        #expect(!LogFormat.journalStream("1:2:3", matchesDevice: 1, inode: 2))
    }

    @Test func textIsWrittenWhenForcedOrWhenJournalStreamIsNotStandardError() throws {
        // The daemon decides with the real stderr: a file whose device and inode the test sets in JOURNAL_STREAM.
        let directory = try SystemdTools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let logPath = directory + "/stderr.log"
        #expect(FileManager.default.createFile(atPath: logPath, contents: nil))
        var info = stat()
        #expect(stat(logPath, &info) == 0)
        let matching = "\(info.st_dev):\(info.st_ino)"
        let text = try ChildProcess(
            executable: DaemonFixture.product("variantd"),
            arguments: ["--config", "/nonexistent", "--socket", directory + "/a.sock", "--log-format", "text"],
            environment: ["JOURNAL_STREAM": matching], logPath: logPath)
        #expect(text.eventuallyListening(at: directory + "/a.sock"))
        text.send(SIGTERM)
        #expect(text.wait() == 0)
        #expect(text.logs.contains("server.listening"), "forced text must write to stderr")

        let mismatched = try ChildProcess(
            executable: DaemonFixture.product("variantd"),
            arguments: ["--config", "/nonexistent", "--socket", directory + "/b.sock"],
            environment: ["JOURNAL_STREAM": "1:1"], logPath: directory + "/mismatched.log")
        #expect(mismatched.eventuallyListening(at: directory + "/b.sock"))
        mismatched.send(SIGTERM)
        #expect(mismatched.wait() == 0)
        #expect(mismatched.logs.contains("server.listening"), "auto with a stale JOURNAL_STREAM must write text")

    }
}

/// The daemon's entries read back with `journalctl`, from a real `systemd-journald` in a private mount namespace
/// (its own tmpfs on /run, so it neither needs nor disturbs the host's journal).
@Suite(.serialized) struct SystemdJournalEndToEndTests {
    private static let script = #"""
        set -eu
        mount -t tmpfs tmpfs /run
        if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal; fi
        "$JOURNALD" & journald=$!
        trap 'kill $journald 2>/dev/null || true; wait $journald 2>/dev/null || true' EXIT
        n=0; until [ -S /run/systemd/journal/socket ]; do sleep 0.05; n=$((n+1)); [ $n -lt 400 ] || exit 3; done
        # stderr is a file named by JOURNAL_STREAM, as systemd does for a service: --log-format auto picks the journal.
        : > "$DIR/stderr.log"
        JOURNAL_STREAM=$(stat -L -c %d:%i "$DIR/stderr.log") "$VARIANTD" --config "$DIR/config.json" \
            --socket "$DIR/v.sock" --poll-interval 0.1 2>>"$DIR/stderr.log" & daemon=$!
        n=0; until [ -S "$DIR/v.sock" ]; do sleep 0.05; n=$((n+1)); [ $n -lt 400 ] || exit 4; done
        printf '{"prompts": {}, "experiments": [{"name": "checkout-prompt"}]}' > "$DIR/bad.json"
        mv "$DIR/bad.json" "$DIR/config.json"
        n=0; until journalctl --no-pager -q CODE=invalid_config | grep -q rejected; do
            sleep 0.1; n=$((n+1)); [ $n -lt 100 ] || break
        done
        kill -TERM $daemon; status=0; wait $daemon || status=$?; echo "daemon-exit=$status"
        journalctl --no-pager -o json SYSLOG_IDENTIFIER=variantd > "$DIR/all.json"
        journalctl --no-pager -o json CODE=invalid_config > "$DIR/rejected.json"
        """#

    @Test(
        .enabled(
            if: Requires.privateJournal,
            "needs systemd-journald, journalctl (Debian package systemd), and unshare -m (util-linux; root or CAP_SYS_ADMIN)"
        ))
    func entriesCarryStructuredFieldsThatJournalctlFilters() throws {
        let journald = try #require(SystemdTools.path("systemd-journald"))
        let unshare = try #require(SystemdTools.path("unshare"))
        let directory = try SystemdTools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try exampleConfig.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        let result = try SystemdTools.run(
            "/usr/bin/timeout", ["60", unshare, "-m", "--propagation", "private", "/bin/sh", "-c", Self.script],
            environment: [
                "JOURNALD": journald, "VARIANTD": DaemonFixture.product("variantd"), "DIR": directory,
                "VARIANTD_LOG_FORMAT": "", "JOURNAL_STREAM": "",
            ])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("daemon-exit=0"), "\(result.output)")

        let entries = try String(contentsOfFile: directory + "/all.json", encoding: .utf8).split(separator: "\n")
            .compactMap { parseObject(String($0)) }
        let version = LoadedConfig.version(of: Array(exampleConfig.utf8))
        let applied = try #require(
            entries.first { $0["MESSAGE"] == .string("config.applied") },
            "no config.applied entry in \(entries.count) entries:\n\(result.output)")
        #expect(applied["CONFIG_VERSION"] == .string(version))
        #expect(applied["CONFIG_SOURCE"] == .string("file:" + directory + "/config.json"))
        #expect(applied["PRIORITY"] == .string("6"))
        #expect(applied["SYSLOG_IDENTIFIER"] == .string("variantd"))
        #expect(applied["CODE_FILE"]?.stringValue?.hasSuffix("ConfigApplier.swift") == true)
        #expect(applied["CODE_LINE"]?.stringValue.flatMap { Int($0) } != nil)
        #expect(applied["_TRANSPORT"] == .string("journal"))

        let rejected = try String(contentsOfFile: directory + "/rejected.json", encoding: .utf8).split(separator: "\n")
            .compactMap { parseObject(String($0)) }
        #expect(rejected.count == 1, "journalctl CODE=invalid_config found \(rejected.count) entries")
        #expect(rejected.first?["MESSAGE"]?.stringValue?.hasPrefix("config.rejected") == true)
        #expect(rejected.first?["PRIORITY"] == .string("3"))
        #expect(rejected.first?["CONFIG_VERSION"] == .string(version))

        // Everything went to the journal, nothing to stderr.
        let stderr = try String(contentsOfFile: directory + "/stderr.log", encoding: .utf8)
        #expect(!stderr.contains("config.applied"), "auto wrote text although JOURNAL_STREAM named stderr:\n\(stderr)")
    }
}
