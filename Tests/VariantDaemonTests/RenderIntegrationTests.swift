import Foundation
import Testing
import VariantCore

/// `render` end to end: the real daemon on the example configuration, asked over its socket and through
/// `variantctl render` and `variantctl stats`.
@Suite(.serialized) struct RenderIntegrationTests {
    @Test func variantctlRendersAUnitsTextPromptAndAChatPrompt() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let socket = ["--socket", daemon.socketPath]
        let assigned = try daemon.ask(#"{"op":"assign","experiment":"checkout-prompt","unit":"user-42"}"#)
        let text = try runCommand(
            "variantctl",
            ["render", "--experiment", "checkout-prompt", "--unit", "user-42", "--var", "store_name=Acme",
             "--var", "customer_name=<Ada>", "--var", "tone=warm"] + socket)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.contains("variant: \(assigned["variant"]?.stringValue ?? "?")\n"), "\(text.stdout)")
        #expect(text.stdout.contains("\ntext:\n"), "\(text.stdout)")
        #expect(text.stdout.contains("<Ada>") && text.stdout.contains("Acme"), "\(text.stdout)")

        let chat = try runCommand(
            "variantctl", ["render", "ticket-triage", "--var", "product=Acme", "--var", "ticket=It crashes", "--var", "mood=x"] + socket)
        #expect(chat.status == 0, "\(chat.stderr)")
        #expect(chat.stdout.contains("[system]\nYou triage support tickets for Acme."), "\(chat.stdout)")
        #expect(chat.stdout.contains("[user]\nIt crashes"), "\(chat.stdout)")
        #expect(chat.stdout.contains("warning: extra_variable mood"), "\(chat.stdout)")

        let json = try runCommand("variantctl", ["render", "ticket-triage", "--json", "--var", "product=A", "--var", "ticket=t"] + socket)
        let answer = try #require(parseObject(json.stdout.trimmingCharacters(in: .newlines)))
        #expect(answer["type"] == .string("chat"))
        #expect(answer["warnings"] == .array([]))
    }

    @Test func aBlockedRenderExitsWithTheCodeAndTheRule() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let blocked = try runCommand(
            "variantctl",
            ["render", "ticket-triage", "--socket", daemon.socketPath, "--var", "product=Acme",
             "--var", "ticket=Charged twice on 4111 1111 1111 1111"])
        #expect(blocked.status == 1)
        #expect(blocked.stderr.contains("rule_blocked") && blocked.stderr.contains("'no-card-numbers'"), "\(blocked.stderr)")
        let missing = try runCommand("variantctl", ["render", "ticket-triage", "--socket", daemon.socketPath, "--var", "product=Acme"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("missing_variable") && missing.stderr.contains("'ticket'"), "\(missing.stderr)")
    }

    @Test func statsCountsALogRuleThatFiredOnRendersOverTheSocket() throws {
        let config = #"""
            {"schema_version":1,"prompts":{"p":{"versions":[{"version":1,"template":"Hello {{name}}","variables":{"required":["name"]},
              "rules":[{"name":"mentions-refund","type":"keywords","action":"log","keywords":["refund"]}]}]}},
             "experiments":[{"name":"e","salt":"s","status":"running","variants":[
               {"name":"a","control":true,"weight":50,"prompt":"p","prompt_version":1},
               {"name":"b","weight":50,"prompt":"p","prompt_version":1}]}]}
            """#
        let daemon = try DaemonFixture(config: config)
        for unit in 0..<30 {
            let answer = try daemon.ask(#"{"op":"render","experiment":"e","unit":"u\#(unit)","variables":{"name":"I want a REFUND"}}"#)
            #expect(answer["text"] == .string("Hello I want a REFUND"))
        }
        let stats = try runCommand("variantctl", ["stats", "e", "--socket", daemon.socketPath])
        #expect(stats.status == 0, "\(stats.stderr)")
        #expect(stats.stdout.contains("prompt rules\nPROMPT  VERSION  RULE             ACTION  TRIGGERED\np       1        mentions-refund  log     30"), "\(stats.stdout)")
        let events = try daemon.ask(#"{"op":"events"}"#)
        let logged = (events["events"]?.arrayValue ?? []).compactMap(\.objectValue).filter { $0["kind"] == .string("prompt_rule") }
        #expect(logged.count == 1, "one event per minute, not one per render")
    }
}
