import Synchronization

/// A prompt version's guardrail by name.
public struct PromptRuleKey: Hashable, Sendable {
    public var prompt: String
    public var version: Int
    public var rule: String

    public init(prompt: String, version: Int, rule: String) {
        self.prompt = prompt
        self.version = version
        self.rule = rule
    }
}

/// How often a prompt rule fired, and what its coalesced events have reported.
public struct PromptRuleTally: Sendable, Equatable {
    /// Every time it fired (kept across restarts in the state file).
    public var triggered = 0
    /// Firings not yet reported by an event (`log` rules only).
    var unreported = 0
    /// When its last event was logged.
    var lastEventAt: Timestamp?
}

extension ExperimentLedger {
    /// The shortest time between two `prompt_rule` events of one rule of one prompt version, so that a rule
    /// firing on every request cannot push the treatment decisions out of the event log.
    public static let promptRuleEventInterval: Double = 60

    /// Counts the rules that fired on one render; a `log` rule also gets a `prompt_rule` event, unless its
    /// previous one is less than `promptRuleEventInterval` old (the firings in between are carried by the next
    /// event's `count`). Returns the events logged.
    @discardableResult
    public func countPromptRules(
        _ rules: [PromptRule], prompt: String, version: Int, experiment: String?, at now: Timestamp
    ) -> [LedgerEvent] {
        state.withLock { state in
            var logged: [LedgerEvent] = []
            for rule in rules {
                let key = PromptRuleKey(prompt: prompt, version: version, rule: rule.name)
                var tally = state.promptRules[key] ?? PromptRuleTally()
                tally.triggered += 1
                if rule.action == .log {
                    tally.unreported += 1
                    let due = tally.lastEventAt.map { now.seconds(since: $0) >= Self.promptRuleEventInterval } ?? true
                    if due {
                        let count = tally.unreported
                        var details = JSONObject()
                        details.members = [
                            ("prompt", .string(prompt)), ("version", .number(Double(version))),
                            ("rule", .string(rule.name)), ("count", .number(Double(count))),
                            ("total", .number(Double(tally.triggered))),
                        ]
                        logged.append(
                            Self.append(
                                LedgerEvent(
                                    at: now, kind: .promptRule, experiment: experiment, actor: "prompt rule",
                                    message: "rule '\(rule.name)' of prompt '\(prompt)' version \(version) fired \(count) time\(count == 1 ? "" : "s") since its previous event",
                                    details: details),
                                to: &state, capacity: eventCapacity))
                        tally.unreported = 0
                        tally.lastEventAt = now
                    }
                }
                state.promptRules[key] = tally
            }
            state.generation &+= 1
            return logged
        }
    }

    /// How often each rule of a prompt version fired (0 for a rule that never did).
    public func promptRuleCounts(prompt: String, version: Int, rules: [String]) -> [Int] {
        state.withLock { state in
            rules.map { state.promptRules[PromptRuleKey(prompt: prompt, version: version, rule: $0)]?.triggered ?? 0 }
        }
    }
}
