import Foundation
import Glibc
import Testing
import VariantCore

/// `variantd-judge` with a real Prometheus and three daemons following one file: a treatment with +10 points of
/// errors on every host is disabled by the judge through the file, every daemon stops assigning it, and an A/A
/// treatment in the same run is not disabled.
@Suite(.serialized) struct JudgeIntegrationTests {
    /// Two fleet-guarded experiments: `harmful` (its treatment fails 10 points more often) and `aa` (the same).
    static let document = """
        {"schema_version": 1,
         "prompts": {"p": {"versions": [{"version": 1, "template": "one"}]}},
         "experiments": [
          {"name": "harmful", "salt": "harmful-1", "status": "running", "guardrails": {"scope": "fleet"},
           "variants": [{"name": "control", "control": true, "weight": 50, "prompt": "p", "prompt_version": 1},
                        {"name": "treatment", "weight": 50, "prompt": "p", "prompt_version": 1}]},
          {"name": "aa", "salt": "aa-1", "status": "running", "guardrails": {"scope": "fleet"},
           "variants": [{"name": "control", "control": true, "weight": 50, "prompt": "p", "prompt_version": 1},
                        {"name": "treatment", "weight": 50, "prompt": "p", "prompt_version": 1}]}]}

        """

    /// Records of `units` units of an experiment, five each, errors at `controlRate` and `treatmentRate`.
    static func load(
        experiment: String, units: Range<Int>, variants: [String: String], controlRate: Double, treatmentRate: Double
    ) -> [String] {
        var lines: [String] = []
        for unit in units {
            let name = "\(experiment)-u\(unit)"
            let variant = variants[name]!
            let rate = variant == "control" ? controlRate : treatmentRate
            for call in 0..<5 {
                let draw = Double((unit * 7919 + call * 104_729) % 1000) / 1000
                lines.append(#"{"experiment":"\#(experiment)","variant":"\#(variant)","unit":"\#(name)","metrics":{"error":\#(draw < rate),"latency_ms":\#(400 + (unit * 31 + call * 17) % 200)}}"#)
            }
        }
        return lines
    }

    @Test(.enabled(if: PrometheusFixture.isInstalled, "Debian's prometheus package (scripts/bootstrap installs it)"))
    func theJudgeDisablesAHarmfulTreatmentForEveryHostAndLeavesAnAATreatmentAlone() async throws {
        let shared = try temporaryDirectory("variantd-judge-fleet")
        defer { try? FileManager.default.removeItem(atPath: shared) }
        let documentPath = shared + "/config.json"
        try Data(Self.document.utf8).write(to: URL(fileURLWithPath: documentPath))
        let ports = try (0..<3).map { _ in try freeLoopbackPort() }
        let hosts = try ports.map { port in
            try DaemonFixture(
                config: nil,
                arguments: ["--config", documentPath, "--metrics-address", "127.0.0.1:\(port)", "--poll-interval", "0.5"])
        }
        let prometheus = try PrometheusFixture(targets: ports.map { "127.0.0.1:\($0)" })

        // Every unit asks its host; records spread over the hosts.
        var variants: [String: String] = [:]
        for experiment in ["harmful", "aa"] {
            for unit in 0..<1200 {
                let name = "\(experiment)-u\(unit)"
                let answer = try hosts[unit % 3].ask(#"{"op":"assign","experiment":"\#(experiment)","unit":"\#(name)"}"#)
                variants[name] = try #require(answer["variant"]?.stringValue)
            }
        }
        let records =
            Self.load(experiment: "harmful", units: 0..<1200, variants: variants, controlRate: 0.05, treatmentRate: 0.15)
            + Self.load(experiment: "aa", units: 0..<1200, variants: variants, controlRate: 0.05, treatmentRate: 0.05)
        for (host, daemon) in hosts.enumerated() {
            let share = records.enumerated().filter { $0.offset % 3 == host }.map(\.element)
            for start in stride(from: 0, to: share.count, by: 200) {
                let batch = share[start..<min(start + 200, share.count)]
                let answer = try daemon.ask(#"{"op":"batch","records":[\#(batch.joined(separator: ","))]}"#)
                #expect(answer["recorded"] == .number(Double(batch.count)), "\(answer)")
            }
        }
        // Each host alone has not disabled anything: the experiments' guardrails have scope fleet.
        for daemon in hosts {
            let config = try daemon.ask(#"{"op":"config"}"#)
            #expect(config["disabled_treatments"] == .array([]), "\(config)")
        }

        // Dry run: once Prometheus has the evidence, it says what it would publish and publishes nothing.
        let unchanged = FileManager.default.contents(atPath: documentPath)
        var dryRun = ""
        let wouldDisable = await eventually {
            let result = try? runProgram(
                DaemonFixture.product("variantd-judge"),
                ["--prometheus", prometheus.baseURL, "--config", documentPath, "--state-dir", shared + "/dry-run-state",
                 "--once", "--dry-run", "--log-format", "text"])
            dryRun = result?.stdout ?? ""
            return dryRun.contains("would disable harmful/treatment")
        }
        #expect(wouldDisable, "\(dryRun)")
        #expect(!dryRun.contains("would disable aa/"), "\(dryRun)")
        #expect(FileManager.default.contents(atPath: documentPath) == unchanged)
        // A plain HTTP source cannot be written: the decision is reported and the judge exits 1.
        let httpSource = try ConfigServerFixture(document: Self.document)
        let readOnly = try runProgram(
            DaemonFixture.product("variantd-judge"),
            ["--prometheus", prometheus.baseURL, "--config", httpSource.url, "--state-dir", shared + "/http-state",
             "--once", "--log-format", "text"])
        #expect(readOnly.status == 1)
        #expect(readOnly.stderr.contains("decided to disable harmful/treatment"), "\(readOnly.stderr)")
        #expect(readOnly.stderr.contains("plain HTTP source, which the judge cannot write"), "\(readOnly.stderr)")

        let judgeState = shared + "/judge-state"
        let judge = Process()
        judge.executableURL = URL(fileURLWithPath: DaemonFixture.product("variantd-judge"))
        judge.arguments = [
            "--prometheus", prometheus.baseURL, "--config", documentPath, "--interval", "1", "--state-dir", judgeState,
            "--log-format", "text",
        ]
        let judgeLog = shared + "/judge.log"
        FileManager.default.createFile(atPath: judgeLog, contents: nil)
        judge.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: judgeLog))
        try judge.run()
        defer { if judge.isRunning { judge.terminate() } }

        func disabledBy(_ experiment: String) -> String? {
            guard let bytes = FileManager.default.contents(atPath: documentPath),
                let root = try? JSONParser.parse(Array(bytes)).objectValue
            else { return nil }
            let object = root["experiments"]?.arrayValue?.first { $0.objectValue?["name"] == .string(experiment) }?.objectValue
            let treatment = object?["variants"]?.arrayValue?.first { $0.objectValue?["name"] == .string("treatment") }?.objectValue
            return treatment?["disabled"]?.objectValue?["by"]?.stringValue
        }
        let published = await eventually { disabledBy("harmful") != nil }
        let log = (try? String(contentsOfFile: judgeLog, encoding: .utf8)) ?? ""
        #expect(published, "the judge did not disable harmful/treatment:\n\(log.suffix(3000))")
        #expect(disabledBy("harmful")?.hasPrefix("variantd-judge@") == true)
        #expect(disabledBy("aa") == nil, "the A/A treatment was disabled")
        _ = try ConfigDocument.validate(Array(FileManager.default.contents(atPath: documentPath) ?? Data()))

        // Every daemon sends the treatment's units to the control once it has read the new document.
        let treated = try #require(variants.first { $0.key.hasPrefix("harmful-") && $0.value == "treatment" }?.key)
        let publishedAt = Date()
        for daemon in hosts {
            let stopped = await eventually {
                let answer = try? daemon.ask(#"{"op":"assign","experiment":"harmful","unit":"\#(treated)"}"#)
                return answer?["variant"] == .string("control")
            }
            #expect(stopped)
            let events = try daemon.ask(#"{"op":"events","limit":50}"#)["events"]?.arrayValue ?? []
            let disables = events.compactMap(\.objectValue).filter {
                $0["kind"] == .string("disabled") && $0["experiment"] == .string("harmful")
            }
            #expect(disables.count == 1, "\(events)")
            #expect(disables.first?["actor"]?.stringValue?.hasPrefix("config: variantd-judge@") == true, "\(disables)")
        }
        print("judge: every daemon assigns the control \(Date().timeIntervalSince(publishedAt)) s after the publish was seen (check interval 0.5 s)")

        // Stopped and run again on its state: nothing is published twice; the document stays as it is.
        judge.terminate()
        judge.waitUntilExit()
        let before = FileManager.default.contents(atPath: documentPath)
        let again = try runProgram(
            DaemonFixture.product("variantd-judge"),
            ["--prometheus", prometheus.baseURL, "--config", documentPath, "--state-dir", judgeState, "--once", "--log-format", "text"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(FileManager.default.contents(atPath: documentPath) == before)
        for daemon in hosts { #expect(daemon.stop() == 0) }
    }

    /// A judge pointed at a Prometheus that is down decides nothing and says why; at a document it cannot
    /// validate it publishes nothing.
    @Test func withoutDataOrAValidDocumentTheJudgeDecidesNothing() throws {
        let directory = try temporaryDirectory("variantd-judge-faults")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/config.json"
        try Data(Self.document.utf8).write(to: URL(fileURLWithPath: path))
        let port = try freeLoopbackPort()
        let down = try runProgram(
            DaemonFixture.product("variantd-judge"),
            ["--prometheus", "http://127.0.0.1:\(port)", "--config", path, "--state-dir", directory + "/state", "--once", "--log-format", "text", "--timeout", "1"])
        #expect(down.status == 1)
        #expect(down.stderr.contains("harmful: prometheus_unreachable"), "\(down.stderr)")
        #expect(FileManager.default.contents(atPath: path) == Data(Self.document.utf8))

        try Data(#"{"schema_version":1,"experiments":[{"name":"x"}]}"#.utf8).write(to: URL(fileURLWithPath: path))
        let invalid = try runProgram(
            DaemonFixture.product("variantd-judge"),
            ["--prometheus", "http://127.0.0.1:\(port)", "--config", path, "--state-dir", directory + "/state", "--once", "--log-format", "text", "--timeout", "1"])
        #expect(invalid.status == 1)
        #expect(invalid.stderr.contains("judge.source_failed"), "\(invalid.stderr)")
        #expect(invalid.stderr.contains("invalid_config"), "\(invalid.stderr)")
    }
}
