import Synchronization
import Testing
@testable import VariantCore

/// A treatment disabled by the configuration document (a variant's `disabled`, as a fleet judge writes it), and
/// guardrails with `scope: fleet`: validation, the decision order, phases, the ledger's events and the ops.
@Suite struct ConfigDisableTests {
    static let judgeDisable =
        #"{"at":"2026-11-20T08:30:00Z","by":"variantd-judge@judge-1","reason":"error rate 6 points above the control's","evidence":{"metric":"error_rate","hosts":12,"p_value":0.0004}}"#

    /// Experiment `e`: control 50, treatment 25 (with `disabled` when given), other 25; `guardrails` when given.
    static func document(disabled: String? = judgeDisable, guardrails: String? = nil, description: String = "d") -> String {
        documentWithExperiment(
            #""name":"e","description":"\#(description)","salt":"s","status":"running","#
                + (guardrails.map { #""guardrails":\#($0),"# } ?? "")
                + #""variants":[{"name":"control","control":true,"weight":50,"prompt":"p","prompt_version":1},"#
                + #"{"name":"treatment","weight":25,"prompt":"p","prompt_version":2"#
                + (disabled.map { #","disabled":\#($0)"# } ?? "") + "},"
                + #"{"name":"other","weight":25,"prompt":"p","prompt_version":2}]"#)
    }

    static func snapshot(_ text: String, disabled: Set<ExperimentLedger.VariantKey> = []) throws -> ServingSnapshot {
        let bytes = Array(text.utf8)
        let config = LoadedConfig(
            document: try ConfigDocument.validate(bytes), version: LoadedConfig.version(of: bytes), source: "test",
            loadedAt: someInstant)
        return ServingSnapshot(config: config, source: "test", lastError: nil, startedAt: someInstant, disabled: disabled)
    }

    func answer(_ line: String, _ snapshot: ServingSnapshot, _ context: RequestContext) throws -> JSONObject {
        try #require(try parseJSON(Responder.respond(to: line, snapshot: snapshot, now: someInstant, context: context)).objectValue)
    }

    static let treatment = ExperimentLedger.VariantKey(experiment: "e", variant: "treatment")

    // MARK: Validation

    @Test func aDisableIsReadWithItsEvidence() throws {
        let variant = try validDocument(Self.document()).experiments[0].variants[1]
        let disable = try #require(variant.disabled)
        #expect(disable.at == Timestamp(rfc3339: "2026-11-20T08:30:00Z"))
        #expect(disable.by == "variantd-judge@judge-1")
        #expect(disable.reason == "error rate 6 points above the control's")
        #expect(disable.evidence?["hosts"] == .number(12))
        let withoutEvidence = try validDocument(Self.document(disabled: #"{"at":"2026-11-20T08:30:00+01:00","by":"j","reason":""}"#))
        #expect(withoutEvidence.experiments[0].variants[1].disabled?.evidence == nil)
        #expect(try validDocument(Self.document(disabled: nil)).experiments[0].variants.allSatisfy { $0.disabled == nil })
    }

    static let badDisables: [(disabled: String, path: String, code: ValidationIssue.Code)] = [
        (#""yes""#, "$.experiments[0].variants[1].disabled", .wrongType),
        (#"{"by":"j","reason":"r"}"#, "$.experiments[0].variants[1].disabled.at", .missingField),
        (#"{"at":"2026-11-20T08:30:00Z","reason":"r"}"#, "$.experiments[0].variants[1].disabled.by", .missingField),
        (#"{"at":"2026-11-20T08:30:00Z","by":"j"}"#, "$.experiments[0].variants[1].disabled.reason", .missingField),
        (#"{"at":20261120,"by":"j","reason":"r"}"#, "$.experiments[0].variants[1].disabled.at", .wrongType),
        (#"{"at":"2026-11-20","by":"j","reason":"r"}"#, "$.experiments[0].variants[1].disabled.at", .invalidTimestamp),
        (#"{"at":"2026-11-20T08:30:00Z","by":7,"reason":"r"}"#, "$.experiments[0].variants[1].disabled.by", .wrongType),
        (#"{"at":"2026-11-20T08:30:00Z","by":"","reason":"r"}"#, "$.experiments[0].variants[1].disabled.by", .invalidValue),
        (
            #"{"at":"2026-11-20T08:30:00Z","by":"\#(String(repeating: "j", count: 257))","reason":"r"}"#,
            "$.experiments[0].variants[1].disabled.by", .invalidValue
        ),
        (#"{"at":"2026-11-20T08:30:00Z","by":"j","reason":false}"#, "$.experiments[0].variants[1].disabled.reason", .wrongType),
        (
            #"{"at":"2026-11-20T08:30:00Z","by":"j","reason":"\#(String(repeating: "é", count: 500))x"}"#,
            "$.experiments[0].variants[1].disabled.reason", .invalidValue
        ),
        (
            #"{"at":"2026-11-20T08:30:00Z","by":"j","reason":"r","evidence":[0.01]}"#,
            "$.experiments[0].variants[1].disabled.evidence", .wrongType
        ),
        (
            #"{"at":"2026-11-20T08:30:00Z","by":"j","reason":"r","until":"2026-12-01T00:00:00Z"}"#,
            "$.experiments[0].variants[1].disabled.until", .unknownField
        ),
    ]

    @Test(arguments: badDisables.indices)
    func eachBadDisableGivesItsCodeAndPath(index: Int) {
        let (disabled, path, code) = Self.badDisables[index]
        let found = issues(of: Self.document(disabled: disabled))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.path == path)
        #expect(found.first?.code == code)
    }

    @Test func aReasonOfExactlyAThousandBytesIsAllowed() {
        let reason = String(repeating: "é", count: 500)
        #expect(issues(of: Self.document(disabled: #"{"at":"2026-11-20T08:30:00Z","by":"j","reason":"\#(reason)"}"#)).isEmpty)
    }

    @Test func theControlCannotBeDisabledByTheDocument() {
        let text = documentWithExperiment(
            #""name":"e","salt":"s","status":"running","variants":[{"name":"control","control":true,"weight":50,"prompt":"p","prompt_version":1,"disabled":\#(Self.judgeDisable)},{"name":"treatment","weight":50,"prompt":"p","prompt_version":2}]"#)
        let found = issues(of: text)
        #expect(found.map(\.path) == ["$.experiments[0].variants[0].disabled"])
        #expect(found.map(\.code) == [.controlCannotBeDisabled])
        #expect(found.first?.message.contains("pause the experiment") == true)
    }

    @Test func guardrailScopeIsHostUnlessTheDocumentSaysFleet() throws {
        #expect(try validDocument(Self.document(disabled: nil)).experiments[0].guardrails.scope == .host)
        let fleet = try validDocument(Self.document(disabled: nil, guardrails: #"{"scope":"fleet"}"#)).experiments[0]
        #expect(fleet.guardrails.scope == .fleet)
        #expect(fleet.guardrails.autoDisable && !fleet.guardrails.disablesOnHost && fleet.guardrails.evaluatesOnHost)
        let region = issues(of: Self.document(disabled: nil, guardrails: #"{"scope":"region"}"#))
        #expect(region.map { "\($0.path) \($0.code)" } == ["$.experiments[0].guardrails.scope invalid_value"])
        let number = issues(of: Self.document(disabled: nil, guardrails: #"{"scope":1}"#))
        #expect(number.map { "\($0.path) \($0.code)" } == ["$.experiments[0].guardrails.scope wrong_type"])
        let typo = issues(of: Self.document(disabled: nil, guardrails: #"{"scop":"fleet"}"#))
        #expect(typo.map { "\($0.path) \($0.code)" } == ["$.experiments[0].guardrails.scop unknown_field"])
    }

    // MARK: Phases and the decision order

    @Test func disablingThroughTheDocumentStartsNoNewPhase() throws {
        let enabled = PhaseDefinition(try validDocument(Self.document(disabled: nil)).experiments[0])
        let disabled = PhaseDefinition(try validDocument(Self.document()).experiments[0])
        let fleet = PhaseDefinition(try validDocument(Self.document(guardrails: #"{"scope":"fleet"}"#)).experiments[0])
        #expect(disabled.fingerprint == enabled.fingerprint)
        #expect(fleet.fingerprint == enabled.fingerprint)
        #expect(disabled.lines == enabled.lines)
    }

    @Test func theDocumentsDisableSendsOnlyThatTreatmentsUnitsToTheControl() throws {
        let enabled = try Self.snapshot(Self.document(disabled: nil))
        let disabled = try Self.snapshot(Self.document())
        let context = RequestContext.detached()
        var moved = 0
        for index in 0..<400 {
            let line = #"{"op":"assign","experiment":"e","unit":"user-\#(index)"}"#
            let before = try answer(line, enabled, context)
            let after = try answer(line, disabled, context)
            if before["variant"] == .string("treatment") {
                #expect(after["variant"] == .string("control"))
                #expect(after["enrolled"] == .bool(false))
                #expect(after["reason"] == .string("disabled"))
                moved += 1
            } else {
                #expect(after["variant"] == before["variant"] && after["reason"] == before["reason"])
            }
        }
        #expect(moved > 50)
    }

    @Test func configAndStatsListTheDocumentsDisableLikeAnyOther() throws {
        let snapshot = try Self.snapshot(Self.document())
        let context = RequestContext.detached()
        let config = try answer(#"{"op":"config"}"#, snapshot, context)
        #expect(config["disabled_treatments"] == .array([.object(JSONObject([("experiment", .string("e")), ("variant", .string("treatment"))]))]))
        let stats = try answer(#"{"op":"stats","experiment":"e"}"#, snapshot, context)
        let variants = try #require(stats["variants"]?.arrayValue).compactMap(\.objectValue)
        let disabled = try #require(variants.first { $0["name"] == .string("treatment") }?["disabled"]?.objectValue)
        #expect(disabled["by"] == .string("config"))
        #expect(disabled["automatic"] == .bool(false))
        #expect(disabled["at"] == .string("2026-11-20T08:30:00Z"))
        #expect(disabled["reason"] == .string("error rate 6 points above the control's"))
        #expect(variants.first { $0["name"] == .string("other") }?["disabled"] == .null)
        let recommendation = try #require(stats["recommendation"]?.objectValue)
        #expect(recommendation["reason"]?.stringValue?.contains("by the configuration document, variantd-judge@judge-1") == true)
    }

    // MARK: The ledger

    @Test func theLedgerLogsEachDisableOnceAcrossReappliesAndRestarts() throws {
        let ledger = ExperimentLedger()
        let disabledDocument = try validDocument(Self.document())
        let first = ledger.followDisables(of: disabledDocument, at: someInstant)
        #expect(first.count == 1)
        let event = try #require(first.first)
        #expect(event.kind == .disabled && event.experiment == "e" && event.variant == "treatment")
        #expect(event.actor == "config: variantd-judge@judge-1")
        #expect(event.message == "error rate 6 points above the control's")
        #expect(event.details["at"] == .string("2026-11-20T08:30:00Z"))
        #expect(event.details["evidence"]?.objectValue?["p_value"] == .number(0.0004))
        #expect(ledger.disabled[Self.treatment]?.configuredBy == "variantd-judge@judge-1")
        #expect(ledger.locallyDisabled.isEmpty)

        // The same disable in a document changed elsewhere: nothing new.
        #expect(ledger.followDisables(of: try validDocument(Self.document(description: "other")), at: someInstant).isEmpty)

        // After a restart on the saved state: nothing new either.
        let restored = ExperimentLedger()
        try restored.restore(from: ledger.encodedState(savedAt: someInstant).bytes)
        #expect(restored.configDisabled == ledger.configDisabled)
        #expect(restored.followDisables(of: disabledDocument, at: someInstant).isEmpty)
        #expect(restored.events(limit: 10).filter { $0.kind == .disabled }.count == 1)

        // Disabled again at another time: a new decision, logged.
        let again = try validDocument(Self.document(disabled: #"{"at":"2026-11-22T00:00:00Z","by":"variantd-judge@judge-2","reason":"still bad"}"#))
        #expect(restored.followDisables(of: again, at: someInstant).map(\.actor) == ["config: variantd-judge@judge-2"])

        // No longer disabled: served again, logged once.
        let lifted = try validDocument(Self.document(disabled: nil))
        let enabled = restored.followDisables(of: lifted, at: someInstant)
        #expect(enabled.map(\.kind) == [.enabled])
        #expect(enabled.first?.actor == "config")
        #expect(restored.disabled.isEmpty)
        #expect(restored.followDisables(of: lifted, at: someInstant).isEmpty)
    }

    @Test func aFractionalTimeIsTheSameDecisionAfterARestart() throws {
        let document = try validDocument(
            Self.document(disabled: #"{"at":"2026-11-20T08:30:00.123456+01:00","by":"j","reason":"r"}"#))
        let ledger = ExperimentLedger()
        #expect(ledger.followDisables(of: document, at: someInstant).count == 1)
        let restored = ExperimentLedger()
        try restored.restore(from: ledger.encodedState(savedAt: someInstant).bytes)
        #expect(restored.followDisables(of: document, at: someInstant).isEmpty)
        #expect(restored.configDisabled[Self.treatment]?.at.rfc3339 == "2026-11-20T07:30:00Z")
    }

    @Test func aTreatmentGoneFromTheDocumentIsForgottenWithoutAnEvent() throws {
        let ledger = ExperimentLedger()
        _ = ledger.followDisables(of: try validDocument(Self.document()), at: someInstant)
        let empty = try validDocument(#"{"schema_version":1,"prompts":{},"experiments":[]}"#)
        #expect(ledger.followDisables(of: empty, at: someInstant).isEmpty)
        #expect(ledger.configDisabled.isEmpty)
    }

    @Test func theMetricsLabelATreatmentTheDocumentDisablesByConfig() throws {
        let ledger = ExperimentLedger()
        _ = ledger.followDisables(of: try validDocument(Self.document()), at: someInstant)
        _ = ledger.disable(
            DisabledTreatment(experiment: "e", variant: "other", at: someInstant, automatic: false, reason: "mine"),
            actor: "uid 0")
        var bytes: [UInt8] = []
        ExperimentExposition.write([], disabled: Array(ledger.disabled.values), detail: .init(), into: &bytes)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#"variantd_treatment_disabled{experiment="e",variant="treatment",by="config"} 1"#), "\(text)")
        #expect(text.contains(#"variantd_treatment_disabled{experiment="e",variant="other",by="operator"} 1"#), "\(text)")
    }

    @Test func theFleetsReportSaysTheDocumentDisabledIt() throws {
        let text = documentWithExperiment(
            #""name":"e","salt":"fleet","status":"running","guardrails":{"scope":"fleet"},"variants":[{"name":"v0","control":true,"weight":50,"prompt":"p","prompt_version":1},{"name":"v1","weight":50,"prompt":"p","prompt_version":1,"disabled":\#(Self.judgeDisable)}]"#)
        let experiment = try validDocument(text).experiments[0]
        let ledger = ExperimentLedger()
        for (_, entry) in FleetStateTests.entries(seed: 7, records: 200, definition: PhaseDefinition(experiment)) {
            _ = ledger.record([entry], now: someInstant)
        }
        _ = ledger.followDisables(of: try validDocument(text), at: someInstant)
        let exported = FleetStateTests.exposition(of: ledger, experiment: experiment, detail: .init())
        let fleet = try FleetState.assemble(experiment: experiment, samples: try FleetStateTests.samples(of: exported, instance: "h1"))
        let disabled = try #require(fleet.disabled[.init(experiment: "e", variant: "v1")])
        #expect(disabled.source == "config" && !disabled.automatic)
        let reason = fleet.report().reason
        #expect(reason.contains("disabled (by the configuration document): on 1 of 1 hosts"), "\(reason)")
    }

    // MARK: The admin ops

    @Test func anOperatorCannotEnableWhatTheDocumentDisables() throws {
        let snapshot = try Self.snapshot(Self.document())
        let ledger = ExperimentLedger()
        _ = ledger.followDisables(of: try #require(snapshot.config?.document), at: someInstant)
        let admin = RequestContext(
            ledger: ledger, caller: Caller(pid: 42, uid: 0, gid: 0, mayAdminister: true), treatmentsChanged: { _ in },
            reload: { true })
        let refused = try answer(#"{"op":"enable","experiment":"e","variant":"treatment"}"#, snapshot, admin)
        let error = try #require(refused["error"]?.objectValue)
        #expect(error["code"] == .string("disabled_by_config"))
        #expect(error["message"]?.stringValue?.contains("disabled by the configuration document (by variantd-judge@judge-1") == true)
        #expect(ledger.events(limit: 10).filter { $0.kind == .enabled }.isEmpty)

        // An operator's own disable is kept apart, and outlives the document's.
        let disabled = try answer(#"{"op":"disable","experiment":"e","variant":"treatment","reason":"mine"}"#, snapshot, admin)
        #expect(disabled["changed"] == .bool(true))
        let lifted = try validDocument(Self.document(disabled: nil))
        let events = ledger.followDisables(of: lifted, at: someInstant)
        #expect(events.first?.message.contains("still disabled on this host") == true)
        #expect(ledger.disabled[Self.treatment]?.configuredBy == nil)
        #expect(ledger.disabled[Self.treatment]?.reason == "mine")
    }

    /// An admin op whose change cannot be written answers `state_not_durable` (it answered ok:true), naming the
    /// reason, while the change stays in effect in memory; once the state can be written, the same op is ok.
    @Test func anAdminOpWhoseStateCannotBeWrittenAnswersStateNotDurable() throws {
        let snapshot = try Self.snapshot(Self.document(disabled: nil))
        let ledger = ExperimentLedger()
        let failure = SharedFailure()
        let admin = RequestContext(
            ledger: ledger, caller: Caller(pid: 42, uid: 0, gid: 0, mayAdminister: true), treatmentsChanged: { _ in },
            reload: { true }, persist: { failure.reason })
        failure.reason = "cannot rename state.json.tmp-abc123 to state.json: Read-only file system"
        for request in [
            #"{"op":"disable","experiment":"e","variant":"treatment"}"#, #"{"op":"enable","experiment":"e","variant":"treatment"}"#,
            #"{"op":"new_phase","experiment":"e"}"#,
        ] {
            let refused = try answer(request, snapshot, admin)
            let error = try #require(refused["error"]?.objectValue, "\(refused)")
            #expect(error["code"] == .string("state_not_durable"))
            #expect(error["message"]?.stringValue?.contains("Read-only file system") == true)
            #expect(error["message"]?.stringValue?.contains("a restart would") == true)
        }
        // Each took effect in memory: disabled, enabled again, and a new phase.
        #expect(ledger.events(limit: 10).map(\.kind).suffix(3) == [.disabled, .enabled, .phaseStarted])
        failure.reason = nil
        let disabled = try answer(#"{"op":"disable","experiment":"e","variant":"treatment"}"#, snapshot, admin)
        #expect(disabled["ok"] == .bool(true) && disabled["changed"] == .bool(true))
    }

    // MARK: Guardrail scope

    /// 300 records per arm in which the treatment errs on every other record and the control on one in twenty.
    func breachingEntries(_ settings: GuardrailSettings) -> [ExperimentLedger.Entry] {
        (0..<300).flatMap { index in
            [
                ExperimentLedger.Entry(
                    experiment: "e", variant: "control", measurements: Measurements(error: index % 20 == 0), shadow: false,
                    guardrails: ("control", settings)),
                ExperimentLedger.Entry(
                    experiment: "e", variant: "treatment", measurements: Measurements(error: index % 2 == 0), shadow: false,
                    guardrails: ("control", settings)),
            ]
        }
    }

    @Test func scopeFleetEvaluatesButNeverDisablesOnTheHostsEvidence() {
        var host = GuardrailSettings()
        host.scope = .host
        let hostLedger = ExperimentLedger()
        let hostOutcome = hostLedger.record(breachingEntries(host), now: someInstant)
        #expect(hostOutcome.disabled.map(\.kind) == [.autoDisabled])  // the same records breach with scope host

        var fleet = GuardrailSettings()
        fleet.scope = .fleet
        let fleetLedger = ExperimentLedger()
        for entry in breachingEntries(fleet) {
            #expect(fleetLedger.record([entry], now: someInstant).disabled.isEmpty)
        }
        #expect(fleetLedger.disabled.isEmpty)
        #expect(fleetLedger.events(limit: 10).filter { $0.kind == .autoDisabled }.isEmpty)
        // The evaluation ran: this host's evidence is in the phase, for export.
        let evidence = fleetLedger.phase(1, of: "e")?.sequential["treatment"]?["error_rate"]
        #expect((evidence?.alwaysValidPValue ?? 1) <= fleet.alpha)

        // Even with auto_disable off, scope fleet keeps evaluating.
        fleet.autoDisable = false
        let quiet = ExperimentLedger()
        #expect(quiet.record(breachingEntries(fleet), now: someInstant).disabled.isEmpty)
        #expect(quiet.phase(1, of: "e")?.sequential["treatment"]?["error_rate"] != nil)
    }

    @Test func aTreatmentTheDocumentDisablesIsNotAlsoDisabledByTheHostsGuardrail() throws {
        let ledger = ExperimentLedger()
        _ = ledger.followDisables(of: try validDocument(Self.document()), at: someInstant)
        #expect(ledger.record(breachingEntries(GuardrailSettings()), now: someInstant).disabled.isEmpty)
        #expect(ledger.locallyDisabled.isEmpty)
    }
}

/// A persistence failure a test switches on and off.
final class SharedFailure: Sendable {
    private let value = Mutex<String?>(nil)
    var reason: String? {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
