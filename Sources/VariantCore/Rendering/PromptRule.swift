import Synchronization

/// A check on a prompt version's rendered text or on the variables it is rendered with (PROTOCOL.md,
/// "Prompt rules"). Built when the configuration is validated: every pattern is compiled then.
public struct PromptRule: Sendable {
    /// What a triggered rule does.
    public enum Action: String, Sendable, CaseIterable {
        /// The render is refused with `rule_blocked`.
        case block
        /// The answer carries a `rule_warning`.
        case warn
        /// The trigger is counted in `stats` and logged as a `prompt_rule` event (coalesced).
        case log
    }

    public enum Kind: String, Sendable, CaseIterable {
        case regex, keywords
        case maxLength = "max_length"
        case model
    }

    /// What a rule reads.
    public enum Target: String, Sendable, CaseIterable {
        /// The rendered text (each message's content, for a chat prompt).
        case output
        /// Each variable's value, as it is rendered.
        case variables
    }

    enum Check: @unchecked Sendable {  // Regex is immutable once compiled; it is only read.
        case regex(Regex<AnyRegexOutput>, pattern: String, mustMatch: Bool)
        /// Lowercased.
        case keywords([String])
        case maxLength(characters: Int?, tokens: Int?)
        case model([String])
    }

    public let name: String
    public let action: Action
    public let target: Target
    let check: Check

    public var kind: Kind {
        switch check {
        case .regex: .regex
        case .keywords: .keywords
        case .maxLength: .maxLength
        case .model: .model
        }
    }

    /// The models a `model` rule allows; nil for other rules.
    public var allowedModels: [String]? {
        if case .model(let models) = check { return models }
        return nil
    }

    /// Approximate tokens of a text of `scalars` Unicode scalars: ceil(scalars / 4), about right for English
    /// with common tokenizers; a bound to catch runaway prompts, not a count to bill by.
    public static func approximateTokens(scalars: Int) -> Int { (scalars + 3) / 4 }

    /// Why the rule fires on `texts` (each checked on its own, their lengths added up), or nil when it does not.
    /// A `model` rule is checked at validation and never fires here.
    func violation(in texts: [String]) -> String? {
        switch check {
        case .regex(let regex, let pattern, let mustMatch):
            for text in texts {
                let matches = text.contains(regex)
                if matches != mustMatch {
                    return mustMatch
                        ? "\(describeTarget) does not match /\(pattern)/"
                        : "\(describeTarget) matches /\(pattern)/"
                }
            }
            return nil
        case .keywords(let keywords):
            for text in texts {
                let lowered = text.lowercased()
                if let keyword = keywords.first(where: { lowered.contains($0) }) {
                    return "\(describeTarget) contains the blocked keyword '\(keyword)'"
                }
            }
            return nil
        case .maxLength(let maximumCharacters, let maximumTokens):
            let lengths = target == .output ? [texts.reduce(0) { $0 + $1.unicodeScalars.count }] : texts.map { $0.unicodeScalars.count }
            for length in lengths {
                if let maximumCharacters, length > maximumCharacters {
                    return "\(describeTarget) is \(length) characters long, more than \(maximumCharacters)"
                }
                let tokens = Self.approximateTokens(scalars: length)
                if let maximumTokens, tokens > maximumTokens {
                    return "\(describeTarget) is about \(tokens) tokens long, more than \(maximumTokens)"
                }
            }
            return nil
        case .model:
            return nil
        }
    }

    private var describeTarget: String { target == .output ? "the rendered prompt" : "a variable" }
}

/// Compiled prompt rule patterns, shared by every configuration this process validates.
///
/// Swift's `Regex(String)` leaks a few hundred bytes per compilation (reference cycles in
/// `_StringProcessing`'s AST conversion, found by LeakSanitizer under `fuzz-request`); a daemon that re-validates its
/// configuration on every change would leak them again each time. Each distinct pattern is compiled once here,
/// up to `capacity` patterns.
final class CompiledPatterns: Sendable {
    /// A compiled pattern; a `Regex` is immutable once compiled and only read.
    struct Entry: @unchecked Sendable {
        let regex: Regex<AnyRegexOutput>
    }

    static let shared = CompiledPatterns()
    static let capacity = 10_000

    private let entries = Mutex<[String: Entry]>([:])

    /// - Throws: the compiler's error when the pattern does not compile.
    func regex(_ pattern: String) throws -> Regex<AnyRegexOutput> {
        if let entry = entries.withLock({ $0[pattern] }) { return entry.regex }
        let regex = try Regex(pattern)
        entries.withLock { entries in
            if entries.count < Self.capacity { entries[pattern] = Entry(regex: regex) }
        }
        return regex
    }
}
