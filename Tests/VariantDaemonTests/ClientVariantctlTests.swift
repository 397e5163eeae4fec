import Foundation
import Glibc
import Testing
import VariantCore

/// `variantctl`'s operator commands against the real daemon: tables, `--json`, exit codes and helpful errors.
@Suite(.serialized) struct ClientVariantctlTests {
    @Test func disableEventsAndEnableAsTablesAndJSON() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let socket = ["--socket", daemon.socketPath]

        let disabled = try runCommand("variantctl", ["disable", "checkout-prompt", "concise", "--reason", "incident 77"] + socket)
        #expect(disabled.status == 0)
        #expect(disabled.stdout == "checkout-prompt/concise: disabled\n")
        let again = try runCommand("variantctl", ["disable", "checkout-prompt", "concise"] + socket)
        #expect(again.stdout == "checkout-prompt/concise: already disabled\n")

        let table = try runCommand("variantctl", ["events", "--limit", "5"] + socket)
        #expect(table.status == 0)
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.first?.hasPrefix("SEQ  ") == true, "\(table.stdout)")
        #expect(lines.first?.contains("EXPERIMENT") == true && lines.first?.hasSuffix("MESSAGE") == true)
        #expect(lines.last?.contains("disabled") == true && lines.last?.hasSuffix("incident 77") == true, "\(table.stdout)")
        // Columns line up: every row has the KIND column where the header has it.
        let kindColumn = try #require(lines.first?.range(of: "KIND")).lowerBound.utf16Offset(in: String(lines[0]))
        for line in lines.dropFirst() {
            let text = String(line)
            let start = text.index(text.startIndex, offsetBy: kindColumn)
            #expect(["config_applied", "disabled"].contains { text[start...].hasPrefix($0) }, "\(text)")
        }

        let json = try runCommand("variantctl", ["events", "--json", "--limit", "1"] + socket)
        let events = try #require(parseObject(json.stdout.trimmingCharacters(in: .newlines))?["events"]?.arrayValue)
        #expect(events.first?.objectValue?["message"] == .string("incident 77"))

        let enabled = try runCommand("variantctl", ["enable", "checkout-prompt", "concise"] + socket)
        #expect(enabled.stdout == "checkout-prompt/concise: enabled\n")
        let control = try runCommand("variantctl", ["disable", "checkout-prompt", "control"] + socket)
        #expect(control.status == 1)
        #expect(control.stderr.contains("control_cannot_be_disabled"))

        #expect(daemon.stop() == 0)
    }

    @Test func reloadPollsTheSourceAtOnce() throws {
        // The file is checked only hourly here, so only the reload can pick up the change within the test.
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--poll-interval", "3600"])
        let socket = ["--socket", daemon.socketPath]
        let before = try daemon.ask(#"{"op":"config"}"#)["config_version"]
        let paused = exampleConfig.replacingOccurrences(of: #""status": "running""#, with: #""status": "paused""#)
        try daemon.writeConfig(paused)
        #expect(try daemon.ask(#"{"op":"config"}"#)["config_version"] == before)

        let reload = try runCommand("variantctl", ["reload"] + socket)
        #expect(reload.status == 0, "\(reload.stderr)")
        #expect(reload.stdout.hasPrefix("reload requested"))
        let expected = JSONValue.string(LoadedConfig.version(of: Array(paused.utf8)))
        #expect(eventually { (try? daemon.ask(#"{"op":"config"}"#)["config_version"]) == expected })
        let reloadJSON = try runCommand("variantctl", ["reload", "--json"] + socket)
        #expect(parseObject(reloadJSON.stdout.trimmingCharacters(in: .newlines))?["reloading"] == .bool(true))
        #expect(daemon.stop() == 0)
    }

    @Test func recordByVariantAndByUnitReachesTheDaemon() throws {
        let state = try TemporaryDirectory()
        let daemon = try DaemonFixture(config: exampleConfig, stateDirectory: state.path)
        let socket = ["--socket", daemon.socketPath]
        let byVariant = try runCommand(
            "variantctl",
            ["record", "checkout-prompt", "concise", "--latency-ms", "812.5", "--error", "false", "--success", "0.5",
             "--tokens", "12", "--custom", "rating=4.5"] + socket)
        #expect(byVariant.status == 0, "\(byVariant.stderr)")
        #expect(byVariant.stdout == "recorded 1 for checkout-prompt/concise\n")
        let byUnit = try runCommand("variantctl", ["record", "checkout-prompt", "--unit", "user-1", "--success", "true"] + socket)
        #expect(byUnit.status == 0, "\(byUnit.stderr)")
        #expect(byUnit.stdout.hasPrefix("recorded 1 for checkout-prompt/"))
        let refused = try runCommand("variantctl", ["record", "checkout-prompt", "nope", "--error", "true"] + socket)
        #expect(refused.status == 1 && refused.stderr.contains("unknown_variant"))
        let invalid = try runCommand("variantctl", ["record", "checkout-prompt", "concise"] + socket)
        #expect(invalid.status == 64 && invalid.stderr.contains("at least one measurement"))
        #expect(daemon.stop() == 0)
        let saved = try #require(parseObject(try String(contentsOfFile: state.path + "/state.json", encoding: .utf8)))
        let variants = try #require(
            saved["experiments"]?.objectValue?["checkout-prompt"]?.arrayValue?.last?.objectValue?["variants"]?.objectValue)
        #expect(variants.members.map { $0.value.objectValue?["records"]?.integerValue ?? 0 }.reduce(0, +) == 2)
    }

    @Test func missingSocketSaysWhereItLookedAndHowToStartTheDaemon() throws {
        let directory = try TemporaryDirectory()
        let missing = try runCommand("variantctl", ["events", "--socket", directory.path + "/none.sock"])
        #expect(missing.status == 69)
        #expect(missing.stderr.contains("no variantd socket at \(directory.path)/none.sock"))
        #expect(missing.stderr.contains("variantd --config"))
    }

    @Test(.enabled(if: Requires.anotherUser, "needs root and setpriv (util-linux) to run variantctl as another user"))
    func permissionErrorNamesTheSocketsGroupAndForbiddenSaysWhoMay() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        chmod(daemon.directory.path, 0o755)
        // The socket is 0660 root:root: nobody may not connect, and is told which group to join.
        let denied = try runCommand("variantctl", ["health", "--socket", daemon.socketPath], asNobody: true)
        #expect(denied.status == 69)
        #expect(denied.stderr.contains("permission denied on \(daemon.socketPath)"), "\(denied.stderr)")
        #expect(denied.stderr.contains("group root"))
        #expect(denied.stderr.contains("usermod -aG root"))

        chmod(daemon.socketPath, 0o666)
        let forbidden = try runCommand("variantctl", ["disable", "checkout-prompt", "concise", "--socket", daemon.socketPath], asNobody: true)
        #expect(forbidden.status == 1)
        #expect(forbidden.stderr.contains("forbidden"))
        #expect(forbidden.stderr.contains("Run with sudo"), "\(forbidden.stderr)")
        let health = try runCommand("variantctl", ["health", "--socket", daemon.socketPath], asNobody: true)
        #expect(health.status == 0)
    }

    @Test func completionScriptsAreGenerated() throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try runCommand("variantctl", ["--generate-completion-script", shell])
            #expect(script.status == 0)
            #expect(script.stdout.contains("disable") && script.stdout.contains("events"), "\(shell)")
        }
    }
}
