import Foundation
import Glibc
import Testing
import VariantClient
import VariantCore

/// The unit files and the install script, checked with systemd's own `systemd-analyze`.
@Suite struct SystemdUnitTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    /// Copies of the units in a temporary folder, with ExecStart= naming the built binary (verify checks it exists).
    private func unitsForVerification(from folder: String) throws -> String {
        let directory = try SystemdTools.temporaryDirectory("variantd-units")
        for unit in ["variantd.service", "variantd.socket", "variantd-judge.service"] {
            guard let text = try? String(contentsOfFile: folder + "/" + unit, encoding: .utf8) else { continue }
            try text.replacingOccurrences(of: "/usr/local/bin/variantd-judge", with: DaemonFixture.product("variantd-judge"))
                .replacingOccurrences(of: "/usr/local/bin/variantd\n", with: DaemonFixture.product("variantd") + "\n")
                .write(toFile: directory + "/" + unit, atomically: true, encoding: .utf8)
        }
        return directory
    }

    @Test(.enabled(if: Requires.systemdAnalyze, "needs systemd-analyze (Debian package systemd)"))
    func theUnitsPassSystemdAnalyzeVerify() throws {
        let analyze = try #require(SystemdTools.path("systemd-analyze"))
        let directory = try unitsForVerification(from: Self.repository + "/systemd")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try SystemdTools.run(
            analyze,
            ["verify", "--man=no", directory + "/variantd.service", directory + "/variantd.socket", directory + "/variantd-judge.service"])
        #expect(result.status == 0, "\(result.output)")
        #expect(!result.output.contains("variantd"), "systemd-analyze verify warned:\n\(result.output)")
    }

    @Test(.enabled(if: Requires.systemdAnalyze, "needs systemd-analyze (Debian package systemd)"))
    func theJudgeIsAsHardenedAsTheDaemon() throws {
        let analyze = try #require(SystemdTools.path("systemd-analyze"))
        let directory = try unitsForVerification(from: Self.repository + "/systemd")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var scores: [Double] = []
        for unit in ["variantd.service", "variantd-judge.service"] {
            let result = try SystemdTools.run(analyze, ["security", "--offline=true", "--no-pager", directory + "/" + unit])
            let marker = "Overall exposure level for \(unit): "
            let line = try #require(result.output.split(separator: "\n").first { $0.contains(marker) }, "\(result.output)")
            scores.append(try #require(Double(line.components(separatedBy: marker)[1].split(separator: " ")[0])))
        }
        print("systemd-analyze security: variantd \(scores[0]), variantd-judge \(scores[1])")
        #expect(scores[1] <= scores[0], "the judge is more exposed (\(scores[1])) than the daemon (\(scores[0]))")
    }

    @Test(.enabled(if: Requires.systemdAnalyze, "needs systemd-analyze (Debian package systemd)"))
    func theServiceIsHardened() throws {
        let analyze = try #require(SystemdTools.path("systemd-analyze"))
        let directory = try unitsForVerification(from: Self.repository + "/systemd")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let result = try SystemdTools.run(
            analyze, ["security", "--offline=true", "--no-pager", directory + "/variantd.service"])
        #expect(result.status == 0, "\(result.output)")
        let marker = "Overall exposure level for variantd.service: "
        let line = try #require(
            result.output.split(separator: "\n").first { $0.contains(marker) }, "no score in:\n\(result.output)")
        let score = try #require(Double(line.components(separatedBy: marker)[1].split(separator: " ")[0]))
        print("systemd-analyze security variantd.service: \(score)")
        #expect(score <= 2.0, "exposure \(score) (aim: 2.0 or less, OK):\n\(result.output)")
        // The directives the hardening relies on are the ones systemd read.
        for directive in [
            "NoNewPrivileges=", "ProtectSystem=", "ProtectHome=", "PrivateTmp=", "SystemCallFilter=~@privileged",
            "MemoryDenyWriteExecute=", "RestrictNamespaces=~user", "CapabilityBoundingSet=~CAP_SYS_ADMIN",
        ] {
            #expect(
                result.output.split(separator: "\n").contains { $0.hasPrefix("✓ \(directive)") },
                "\(directive) is not satisfied:\n\(result.output)")
        }
    }

    @Test func installStagesBinariesUnitsAndConfigurationAndKeepsEdits() throws {
        let stage = try SystemdTools.temporaryDirectory("variantd-install")
        defer { try? FileManager.default.removeItem(atPath: stage) }
        let products = DaemonFixture.productsDirectory.path
        let first = try SystemdTools.run(
            Self.repository + "/scripts/install", ["--binaries", products], environment: ["DESTDIR": stage])
        #expect(first.status == 0, "\(first.output)")
        for path in [
            "/usr/local/bin/variantd", "/usr/local/bin/variantctl", "/etc/systemd/system/variantd.service",
            "/etc/systemd/system/variantd.socket", "/etc/variantd/variantd.env", "/etc/variantd/config.json",
            "/etc/sysusers.d/variantd.conf", "/usr/local/share/doc/variantd/README.md",
            "/usr/local/bin/variantd-judge", "/etc/systemd/system/variantd-judge.service",
            "/etc/variantd/variantd-judge.env",
        ] {
            #expect(FileManager.default.fileExists(atPath: stage + path), "\(path) not installed")
        }
        #expect(access(stage + "/usr/local/bin/variantd", X_OK) == 0)
        // Installed stripped: no symbol table (`nm` says "no symbols"), and smaller than the built binary.
        for binary in ["variantd", "variantctl", "variantd-judge"] {
            let installed = try FileManager.default.attributesOfItem(atPath: stage + "/usr/local/bin/" + binary)
            let built = try FileManager.default.attributesOfItem(atPath: products + "/" + binary)
            #expect((installed[.size] as? Int ?? 0) < (built[.size] as? Int ?? 0), "\(binary) is not stripped")
            let symbols = try SystemdTools.run("/usr/bin/nm", [stage + "/usr/local/bin/" + binary])
            #expect(symbols.output.contains("no symbols"), "\(binary): \(symbols.output.prefix(200))")
        }
        let service = try String(contentsOfFile: stage + "/etc/systemd/system/variantd.service", encoding: .utf8)
        #expect(service.contains("ExecStart=/usr/local/bin/variantd\n"))
        #expect(service.contains("EnvironmentFile=-/etc/variantd/variantd.env"))

        // A second install keeps the operator's options and config.
        try "VARIANTD_LOG_LEVEL=debug\n".write(
            toFile: stage + "/etc/variantd/variantd.env", atomically: true, encoding: .utf8)
        let second = try SystemdTools.run(
            Self.repository + "/scripts/install", ["--binaries", products],
            environment: ["DESTDIR": stage, "PREFIX": "/opt/variantd"])
        #expect(second.status == 0, "\(second.output)")
        #expect(try String(contentsOfFile: stage + "/etc/variantd/variantd.env", encoding: .utf8) == "VARIANTD_LOG_LEVEL=debug\n")
        let moved = try String(contentsOfFile: stage + "/etc/systemd/system/variantd.service", encoding: .utf8)
        #expect(moved.contains("ExecStart=/opt/variantd/bin/variantd\n"), "PREFIX is not respected")

        // The installed units verify too, once they name a binary that exists here.
        if let analyze = SystemdTools.path("systemd-analyze") {
            let directory = try unitsForVerification(from: stage + "/etc/systemd/system")
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let text = try String(contentsOfFile: directory + "/variantd.service", encoding: .utf8)
                .replacingOccurrences(of: "/opt/variantd/bin/variantd", with: DaemonFixture.product("variantd"))
            try text.write(toFile: directory + "/variantd.service", atomically: true, encoding: .utf8)
            let verify = try SystemdTools.run(
                analyze, ["verify", "--man=no", directory + "/variantd.service", directory + "/variantd.socket"])
            #expect(verify.status == 0 && !verify.output.contains("variantd"), "\(verify.output)")
        }
    }

    @Test func everyOptionIsDocumentedInTheEnvironmentFileAndTheDocs() throws {
        let help = try SystemdTools.run(DaemonFixture.product("variantd"), ["--help"])
        let options = Set(
            help.output.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," })
                .filter { $0.hasPrefix("--") && $0.count > 2 && $0 != "--help" }
                .map { String($0.dropFirst(2).prefix { $0.isLetter || $0 == "-" }) })
        #expect(options.contains("ready-timeout") && options.contains("log-format"))
        let environmentFile = try String(contentsOfFile: Self.repository + "/systemd/variantd.env", encoding: .utf8)
        let configurationDoc = try String(contentsOfFile: Self.repository + "/docs/configuration.md", encoding: .utf8)
        for option in options {
            let variable = "VARIANTD_" + option.uppercased().replacingOccurrences(of: "-", with: "_")
            let inEnvironmentFile = environmentFile.contains("#\(variable)=")
            let inDocs = configurationDoc.contains("| `--\(option)` | `\(variable)` |")
            #expect(inEnvironmentFile, "systemd/variantd.env does not document \(variable)")
            #expect(inDocs, "docs/configuration.md's daemon options table has no row for --\(option)")
        }
    }

    @Test func everyJudgeOptionIsDocumentedInItsEnvironmentFileAndTheDocs() throws {
        let help = try SystemdTools.run(DaemonFixture.product("variantd-judge"), ["--help"])
        let options = Set(
            help.output.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "," })
                .filter { $0.hasPrefix("--") && $0.count > 2 && $0 != "--help" }
                .map { String($0.dropFirst(2).prefix { $0.isLetter || $0 == "-" }) })
        #expect(options.contains("prometheus") && options.contains("dry-run"))
        let environmentFile = try String(contentsOfFile: Self.repository + "/systemd/variantd-judge.env", encoding: .utf8)
        let fleetDoc = try String(contentsOfFile: Self.repository + "/docs/fleet.md", encoding: .utf8)
        for option in options {
            #expect(fleetDoc.contains("`--\(option)`"), "docs/fleet.md's judge options table has no row for --\(option)")
            guard !["dry-run", "once", "log-level", "log-format"].contains(option) else { continue }
            let variable = "VARIANTD_JUDGE_" + option.uppercased().replacingOccurrences(of: "-", with: "_")
            #expect(environmentFile.contains("#\(variable)="), "systemd/variantd-judge.env does not document \(variable)")
        }
    }

    @Test(.enabled(if: Requires.memoryDenyWriteExecute, "needs the kernel's PR_SET_MDWE (Linux 6.3+)"))
    func theDaemonRunsWithMemoryDenyWriteExecute() throws {
        // MemoryDenyWriteExecute=yes in the unit; the kernel's own version of it (prctl PR_SET_MDWE, Linux 6.3+)
        // survives exec, so the daemon can be checked without systemd.
        let directory = try SystemdTools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let script = """
            import ctypes, os, sys
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
                print("mdwe-unsupported", ctypes.get_errno(), file=sys.stderr); sys.exit(77)
            print("mdwe=%d" % libc.prctl(66, 0, 0, 0, 0), file=sys.stderr, flush=True)  # PR_GET_MDWE
            os.execv(sys.argv[1], sys.argv[1:])
            """
        let child = try ChildProcess(
            executable: "/usr/bin/env",
            arguments: [
                "python3", "-c", script, DaemonFixture.product("variantd"), "--config",
                SystemdUnitTests.repository + "/examples/variantd.json", "--socket", directory + "/v.sock",
            ],
            logPath: directory + "/variantd.log")
        if !child.eventuallyListening(at: directory + "/v.sock") {
            let status = child.wait()
            Issue.record("variantd did not start under MDWE (status \(status)):\n\(child.logs)")
            return
        }
        #expect(child.logs.contains("mdwe=1"), "MDWE was not in force:\n\(child.logs)")
        let answer = parseObject(
            try VariantConnection(socketPath: directory + "/v.sock").request(
                #"{"op":"assign","experiment":"checkout-prompt","unit":"u"}"#))
        #expect(answer?["ok"] == .bool(true))
        child.send(SIGTERM)
        #expect(child.wait() == 0, "\(child.logs)")
    }
}
