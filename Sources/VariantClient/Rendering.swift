import Glibc
import VariantCore

extension VariantClient {
    /// A prompt version rendered with variables (`render`).
    ///
    /// `kind` is `.text` (`text` is the prompt) or `.chat` (`messages`), or nil when nothing could be rendered:
    /// `error` then says why. The daemon's refusals (`rule_blocked`, `missing_variable`, `invalid_variables`,
    /// explained in `message`) are never replaced by the fallback: serving the control instead would hide the
    /// problem or go around a prompt rule. When the daemon cannot answer, the fallback's version is rendered here by
    /// the daemon's own code, prompt rules included (`assignment.reason == "fallback"`, `error` says why); without a
    /// fallback version `kind` is nil and the service uses its own default text.
    public struct Rendering: Sendable, Equatable {
        public enum Kind: String, Sendable {
            case text, chat
        }

        /// With an experiment: the assignment the rendering is for (the daemon's, or the fallback's control).
        public var assignment: Assignment?
        public var prompt: String?
        public var promptVersion: Int?
        public var kind: Kind?
        public var text: String?
        /// A chat prompt's messages, each content rendered.
        public var messages: [PromptMessage]?
        /// The daemon's warnings: `{"code":"extra_variable","variable":..}`, `{"code":"rule_warning",..}`.
        public var warnings: [JSONObject]
        public var error: String?
        public var message: String?

        public var isRendered: Bool { kind != nil }
        public var isFallback: Bool { assignment?.reason == "fallback" }

        init(
            assignment: Assignment?, prompt: String? = nil, promptVersion: Int? = nil, kind: Kind? = nil,
            text: String? = nil, messages: [PromptMessage]? = nil, warnings: [JSONObject] = [], error: String? = nil,
            message: String? = nil
        ) {
            self.assignment = assignment
            self.prompt = prompt
            self.promptVersion = promptVersion
            self.kind = kind
            self.text = text
            self.messages = messages
            self.warnings = warnings
            self.error = error
            self.message = message
        }
    }

    /// The daemon's codes for a render it refuses; the fallback never replaces these.
    static let renderRefusals: Set<String> = ["rule_blocked", "missing_variable", "invalid_variables"]

    /// The prompt version `unit` gets in `experiment`, rendered with `variables` by the daemon and checked by the
    /// version's prompt rules, in one round trip; never throws (see `Rendering` for refusals and the fallback).
    public func render(
        _ experiment: String, unit: String, variables: JSONObject = JSONObject(), attributes: JSONObject = JSONObject()
    ) -> Rendering {
        let fields = Self.renderFields(experiment, unit: unit, variables: variables, attributes: attributes)
        return rendered(experiment, unit: unit, variables: variables, askLine(fields))
    }

    /// A prompt version (the latest without `version`) rendered by the daemon, without an experiment; the
    /// fallback's copy rendered here when the daemon cannot answer. Never throws. (Python: `render_prompt`.)
    public func renderPrompt(_ prompt: String, variables: JSONObject = JSONObject(), version: Int? = nil) -> Rendering {
        rendered(prompt: prompt, version: version, variables: variables, ask(Self.renderFields(prompt: prompt, version: version, variables: variables)))
    }

    /// The fields of a `render` request for an experiment's unit.
    static func renderFields(
        _ experiment: String, unit: String, variables: JSONObject, attributes: JSONObject
    ) -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [
            ("op", .string("render")), ("experiment", .string(experiment)), ("unit", .string(unit)),
            ("variables", .object(variables)),
        ]
        if !attributes.isEmpty { fields.append(("attributes", .object(attributes))) }
        return fields
    }

    /// The fields of a `render` request for a prompt version without an experiment.
    static func renderFields(prompt: String, version: Int?, variables: JSONObject) -> [(String, JSONValue)] {
        var fields: [(String, JSONValue)] = [
            ("op", .string("render")), ("prompt", .string(prompt)), ("variables", .object(variables)),
        ]
        if let version { fields.append(("prompt_version", .number(Double(version)))) }
        return fields
    }

    /// The rendering for an experiment's `render` answer line: an `ok` answer's through `splitRendering`, any other
    /// answer (and a line that does not split) decoded whole.
    func rendered(
        _ experiment: String, unit: String, variables: JSONObject, _ result: Result<AnswerLine, Failure>
    ) -> Rendering {
        if case .success(let line) = result, let rendering = splitRendering(experiment, unit: unit, line) { return rendering }
        return rendered(experiment, unit: unit, variables: variables, result.flatMap { line in
            Result { () throws(Failure) -> JSONObject in try Self.object(of: line) }
        })
    }

    /// An `ok` render answer is the `assign` answer followed by the rendering, which starts at the last
    /// `,"type":"` (no later member has that key, and inside a string a quote is escaped): the assignment part is
    /// looked up in `assignAnswers` like an `assign` answer, and only the rendering is parsed. Nil for any other
    /// answer.
    private func splitRendering(_ experiment: String, unit: String, _ line: AnswerLine) -> Rendering? {
        guard let afterID = line.afterID, let start = Self.renderingStart(in: line.bytes, after: afterID) else { return nil }
        let key = AssignAnswers.Key(bytes: line.bytes[afterID..<start])
        var assignment = assignAnswers.assignment(key, unit: unit)
        if assignment == nil, case .object(let head)? = try? JSONParser.parse(line.bytes[..<start] + [UInt8(ascii: "}")]),
            head["ok"] == .bool(true)
        {
            let decided = self.assignment(experiment, from: head, unit: unit)
            guard decided.isDaemonsDecision else { return nil }
            assignAnswers.keep(decided, for: key)
            assignment = decided
        }
        guard let assignment else { return nil }
        if let prompt = assignment.prompt, let version = assignment.promptVersion,
            let (text, warnings) = Self.textRendering(in: line.bytes, from: start)
        {
            return Rendering(
                assignment: assignment, prompt: prompt, promptVersion: version, kind: .text, text: text, warnings: warnings)
        }
        guard case .object(let rendering)? = try? JSONParser.parse([UInt8(ascii: "{")] + line.bytes[(start + 1)...])
        else { return nil }
        return Self.rendering(from: rendering, prompt: assignment.prompt, version: assignment.promptVersion, assignment: assignment)
    }

    /// A text rendering read where it lies in the answer line: the members from `start` to the line's end exactly
    /// `,"type":"text","text":"…","warnings":[…]}`, the text decoded from the line straight into the `String`'s
    /// storage (parsing the members copied the line's tail, then the text's runs into a buffer, then into the
    /// `String`: a third of a render's cost in the shim). Nil for anything else (a chat rendering, other spacing or
    /// members, a `\u` escape, a control character, bytes that are not UTF-8, warnings that are not objects), which
    /// the parser then reads and refuses or accepts as before: both ways give the same rendering
    /// (`AssignAnswersTests`).
    static func textRendering(in bytes: [UInt8], from start: Int) -> (text: String, warnings: [JSONObject])? {
        let head: StaticString = #","type":"text","text":""#
        let tail: StaticString = #","warnings":"#
        return bytes.withUnsafeBufferPointer { buffer -> (text: String, warnings: [JSONObject])? in
            guard let base = buffer.baseAddress, buffer.count - start > head.utf8CodeUnitCount,
                memcmp(base + start, head.utf8Start, head.utf8CodeUnitCount) == 0
            else { return nil }
            guard let (text, end) = decodedString(buffer, from: start + head.utf8CodeUnitCount) else { return nil }
            let arrayStart = end + tail.utf8CodeUnitCount
            guard buffer.count - arrayStart >= 3, memcmp(base + end, tail.utf8Start, tail.utf8CodeUnitCount) == 0,
                base[buffer.count - 1] == UInt8(ascii: "}")
            else { return nil }
            if buffer.count - arrayStart == 3, base[arrayStart] == UInt8(ascii: "["), base[arrayStart + 1] == UInt8(ascii: "]") {
                return (text, [])
            }
            guard case .array(let items)? = try? JSONParser.parse(
                buffer: UnsafeBufferPointer(rebasing: buffer[arrayStart..<(buffer.count - 1)]))
            else { return nil }
            var warnings: [JSONObject] = []
            warnings.reserveCapacity(items.count)
            for item in items {
                guard case .object(let warning) = item else { return nil }
                warnings.append(warning)
            }
            return (text, warnings)
        }
    }

    /// The JSON string whose contents start at `start` (after its opening quote), decoded into a `String`'s own
    /// storage in one pass, and where it ends (after its closing quote). Only what the daemon writes in a rendered
    /// text is read here: runs of bytes copied whole (found 8 bytes at a time) and the two-character escapes; nil at a
    /// `\u` escape, a control character or an unterminated string (the parser then decides). Bytes of 0x80 and
    /// above are copied and the result checked as UTF-8, as the parser checks it: nil if it is not.
    private static func decodedString(_ buffer: UnsafeBufferPointer<UInt8>, from start: Int) -> (String, Int)? {
        let base = buffer.baseAddress!
        let count = buffer.count
        var end: Int?
        var isASCII = true
        let text = String(unsafeUninitializedCapacity: count - start) { output -> Int in
            var written = 0
            var index = start
            while true {
                let runStart = index
                index = JSONStringBytes.endOfPlainASCIIWords(base, from: index, count: count)
                while index < count {
                    let byte = base[index]
                    if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") || byte < 0x20 { break }
                    if byte >= 0x80 { isASCII = false }
                    index += 1
                }
                if index > runStart {
                    (output.baseAddress! + written).update(from: base + runStart, count: index - runStart)
                    written += index - runStart
                }
                guard index + 1 < count else { return 0 }  // unterminated: the line ends with the member's `}`
                switch base[index] {
                case UInt8(ascii: "\""):
                    end = index + 1
                    // Checked as the parser checks it (the escapes read here write ASCII, so they cannot make bytes
                    // that are not UTF-8 valid): `String` would repair them instead.
                    if !isASCII, String(validating: UnsafeBufferPointer(rebasing: output[..<written]), as: UTF8.self) == nil {
                        end = nil
                        return 0
                    }
                    return written
                case UInt8(ascii: "\\"):
                    // `\u` (the parser reads it) or an invalid escape (the parser refuses it): left to the parser.
                    guard let decoded = JSONStringBytes.shortEscape(base[index + 1]) else { return 0 }
                    output[written] = decoded
                    written += 1
                    index += 2
                default:
                    return 0  // a control character: the parser refuses it
                }
            }
        }
        guard let end else { return nil }
        return (text, end)
    }

    /// Where the rendering starts in an `ok` render answer (the `,` of its last `,"type":"`), if it has one.
    static func renderingStart(in bytes: [UInt8], after afterID: Int) -> Int? {
        let marker: StaticString = #","type":""#
        let length = marker.utf8CodeUnitCount
        guard bytes.count >= afterID + length else { return nil }
        // Backwards over the rendered text (kilobytes): 8 bytes at a time while a word holds no quote (the marker's
        // second byte), then byte by byte through a word that does.
        let ones: UInt64 = 0x0101_0101_0101_0101
        let quotes = ones &* UInt64(UInt8(ascii: "\""))
        return bytes.withUnsafeBufferPointer { buffer -> Int? in
            let base = buffer.baseAddress!
            var index = buffer.count - length  // the marker's start, at most
            while index > afterID {
                if index - 7 > afterID {
                    // The word of bytes index-6 ... index+1: a marker starting in it has its quote in it.
                    let word = UInt64(littleEndian: UnsafeRawPointer(base + index - 6).loadUnaligned(as: UInt64.self)) ^ quotes
                    if (word &- ones) & ~word & (ones << 7) == 0 {
                        index -= 8
                        continue
                    }
                }
                if base[index] == UInt8(ascii: ","), memcmp(base + index, marker.utf8Start, length) == 0 { return index }
                index -= 1
            }
            return nil
        }
    }

    /// The rendering for an experiment's `render` answer: the daemon's refusal as it is, the fallback's control
    /// rendered here when the daemon could not answer.
    func rendered(
        _ experiment: String, unit: String, variables: JSONObject, _ result: Result<JSONObject, Failure>
    ) -> Rendering {
        let answer: JSONObject
        switch result {
        case .success(let success): answer = success
        case .failure(let failure): return fallback.render(fallBack(experiment, failure.code), variables: variables)
        }
        if let refusal = Self.refusal(in: answer) { return refusal }
        let assignment = assignment(experiment, from: answer, unit: unit)
        guard assignment.isDaemonsDecision else {
            return fallback.render(assignment, variables: variables)
        }
        return Self.rendering(from: answer, assignment: assignment)
    }

    /// The rendering for a prompt version's `render` answer, or the fallback's copy rendered here.
    func rendered(
        prompt: String, version: Int?, variables: JSONObject, _ result: Result<JSONObject, Failure>
    ) -> Rendering {
        var code = "invalid_answer"
        switch result {
        case .success(let answer):
            if let refusal = Self.refusal(in: answer) { return refusal }
            if answer["ok"] == .bool(true) { return Self.rendering(from: answer, assignment: nil) }
            code = answer["error"]?.objectValue?["code"]?.stringValue ?? code
        case .failure(let failure):
            code = failure.code
        }
        shared.count { $0.fallbacks += 1 }
        let known = fallback.template(prompt, version: version)
        return fallback.render(
            prompt: prompt, version: known?.version, variables: variables, assignment: nil, error: code)
    }

    private static func refusal(in answer: JSONObject) -> Rendering? {
        guard answer["ok"] != .bool(true), let error = answer["error"]?.objectValue,
            let code = error["code"]?.stringValue, renderRefusals.contains(code)
        else { return nil }
        return Rendering(assignment: nil, error: code, message: error["message"]?.stringValue)
    }

    private static func rendering(from answer: JSONObject, assignment: Assignment?) -> Rendering {
        rendering(
            from: answer, prompt: answer["prompt"]?.stringValue, version: answer["prompt_version"]?.integerValue,
            assignment: assignment)
    }

    /// The rendering in `answer` (its `type`, `text` or `messages`, `warnings`) of `prompt`'s `version`.
    private static func rendering(from answer: JSONObject, prompt: String?, version: Int?, assignment: Assignment?) -> Rendering {
        guard let kind = answer["type"]?.stringValue.flatMap(Rendering.Kind.init(rawValue:)), let prompt, let version
        else { return Rendering(assignment: assignment, error: "invalid_answer", message: "a render answer without its rendering") }
        let warnings = (answer["warnings"]?.arrayValue ?? []).compactMap(\.objectValue)
        switch kind {
        case .text:
            guard let text = answer["text"]?.stringValue else { break }
            return Rendering(
                assignment: assignment, prompt: prompt, promptVersion: version, kind: .text, text: text, warnings: warnings)
        case .chat:
            guard let messages = answer["messages"]?.arrayValue else { break }
            return Rendering(
                assignment: assignment, prompt: prompt, promptVersion: version, kind: .chat,
                messages: VariantClient.messages(from: messages), warnings: warnings)
        }
        return Rendering(assignment: assignment, error: "invalid_answer", message: "a render answer without its rendering")
    }
}

extension Fallback {
    /// Renders the fallback's version for `assignment` here (`kind` nil when this fallback has none).
    public func render(_ assignment: VariantClient.Assignment, variables: JSONObject) -> VariantClient.Rendering {
        guard let prompt = assignment.prompt else {
            return VariantClient.Rendering(assignment: assignment, error: assignment.error, message: "no fallback prompt")
        }
        return render(
            prompt: prompt, version: assignment.promptVersion, variables: variables, assignment: assignment,
            error: assignment.error)
    }

    /// Renders a version of `prompt` here with the daemon's code: its declared variables, templates and prompt rules.
    func render(
        prompt: String, version: Int?, variables: JSONObject, assignment: VariantClient.Assignment?, error: String?
    ) -> VariantClient.Rendering {
        guard let version, let found = versions[prompt]?[version] else {
            return VariantClient.Rendering(
                assignment: assignment, error: error, message: "no fallback template for this prompt version")
        }
        let prepared: PreparedRender
        do {
            prepared = try found.prepareRender(variables: variables)
        } catch {
            return VariantClient.Rendering(
                assignment: assignment, prompt: prompt, promptVersion: version, error: error.code.rawValue,
                message: error.message)
        }
        if let blocked = prepared.blocked {
            return VariantClient.Rendering(
                assignment: assignment, prompt: prompt, promptVersion: version, error: "rule_blocked",
                message: "rule '\(blocked.rule)': \(blocked.reason)")
        }
        let texts = prepared.renderedTexts
        if let messages = found.messages {
            let rendered = zip(messages, texts).map { PromptMessage(role: $0.role, content: $1) }
            return VariantClient.Rendering(
                assignment: assignment, prompt: prompt, promptVersion: version, kind: .chat, messages: rendered, error: error)
        }
        return VariantClient.Rendering(
            assignment: assignment, prompt: prompt, promptVersion: version, kind: .text, text: texts.first, error: error)
    }
}
