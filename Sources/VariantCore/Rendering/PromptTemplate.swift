import Mustache

/// A prompt template parsed once, when the configuration is validated, and ready to render on every request.
///
/// swift-mustache parses the text and is the authority on what it renders. variantd accepts a subset of Mustache
/// (PROTOCOL.md, "Templates"): variables (`{{name}}`, `{{{name}}}`, `{{& name}}`), sections and inverted sections
/// on a declared variable (`{{#name}}..{{/name}}`, `{{^name}}..{{/name}}`, with `{{.}}` inside), and comments.
/// Nothing is HTML-escaped: a prompt is not HTML.
///
/// A template without sections also gets a render plan: its literal parts, JSON-escaped once here, and the
/// positions of its variables, found by rendering the template once with a marker in each variable. Rendering it
/// then copies bytes and escapes only the variables' values, and gives exactly what swift-mustache gives (the
/// tests and the `fuzz-render` harness compare the two).
///
/// A class, immutable once parsed, so that a render shares it instead of copying and retaining its fields.
public final class PromptTemplate: Sendable {
    /// The template as written.
    public let source: String
    /// The variables the template references, in order of first use.
    public let referencedVariables: [String]
    let mustache: MustacheTemplate
    /// The render plan; nil when the template has sections, which swift-mustache renders.
    let plan: RenderPlan?

    /// Why a template cannot be used.
    public enum Problem: Error, Sendable, Equatable {
        /// swift-mustache could not parse it.
        case syntax(String)
        /// It uses Mustache beyond the subset variantd accepts.
        case unsupported(String)
        /// It references a variable the version does not declare.
        case undeclaredVariable(String)
    }

    /// Parses a template whose versions declare `declaredVariables` (required ones first, then optional ones).
    /// - Throws: every `Problem` found, in order (`[Problem]`).
    public init(_ source: String, declaredVariables: [String]) throws(TemplateProblems) {
        // Nothing is escaped: the TEXT content type, set by a pragma on a line of its own (a standalone tag, so
        // the line disappears and the first line of the template is parsed as if it were the first).
        let mustache: MustacheTemplate
        do {
            mustache = try MustacheTemplate(string: Self.textPragma + source)
        } catch let error as MustacheTemplate.ParserError {
            let context = error.context
            throw TemplateProblems([
                .syntax(
                    "line \(context.lineNumber - 1), column \(context.columnNumber): \(Self.describe(error.error))")
            ])
        } catch {
            throw TemplateProblems([.syntax("\(error)")])
        }
        var problems: [Problem] = []
        let scan = TemplateScanner.scan(source)
        problems += scan.unsupported.map { .unsupported($0) }
        for name in scan.variables where !declaredVariables.contains(name) {
            problems.append(.undeclaredVariable(name))
        }
        guard problems.isEmpty else { throw TemplateProblems(problems) }
        self.source = source
        self.mustache = mustache
        self.referencedVariables = scan.variables
        self.plan = scan.hasSections ? nil : Self.plan(mustache, source: source, declaredVariables: declaredVariables)
    }

    static let textPragma = "{{%CONTENT_TYPE:TEXT}}\n"

    /// The variables a template references, in order of first use (for declaring them when a template comes
    /// without declarations, as a client's fallback template does).
    public static func referencedVariables(in source: String) -> [String] {
        TemplateScanner.scan(source).variables
    }

    private static func describe(_ error: any Error) -> String {
        switch error as? MustacheTemplate.Error {
        case .sectionCloseNameIncorrect?: "a section is closed with another name than it was opened with"
        case .unfinishedName?: "a tag is not closed, or its name has characters a name cannot have"
        case .expectedSectionEnd?: "a section is not closed"
        case .invalidSetDelimiter?: "a set-delimiter tag is malformed"
        case .invalidConfigVariableSyntax?, .unrecognisedConfigVariable?: "a pragma tag is malformed"
        default: "\(error)"
        }
    }

    // Markers around a variable's index in the one rendering that finds the variables: noncharacters, which a
    // template does not contain (one that does gets no plan).
    private static let markerStart = Unicode.Scalar(0xFDD0 as UInt32)!
    private static let markerEnd = Unicode.Scalar(0xFDD1 as UInt32)!

    private static func plan(_ mustache: MustacheTemplate, source: String, declaredVariables: [String])
        -> RenderPlan?
    {
        guard !source.unicodeScalars.contains(where: { $0 == markerStart || $0 == markerEnd }) else { return nil }
        var markers: [String: Any] = [:]
        for (index, name) in declaredVariables.enumerated() {
            markers[name] = "\(markerStart)\(index)\(markerEnd)"
        }
        let rendered = mustache.render(markers)
        var plan = RenderPlan.Builder()
        var literal = String.UnicodeScalarView()
        var scalars = rendered.unicodeScalars.makeIterator()
        func flushLiteral() {
            guard !literal.isEmpty else { return }
            plan.appendLiteral(literal)
            literal = String.UnicodeScalarView()
        }
        while let scalar = scalars.next() {
            guard scalar == markerStart else {
                literal.append(scalar)
                continue
            }
            var digits = ""
            while let digit = scalars.next(), digit != markerEnd { digits.unicodeScalars.append(digit) }
            guard let index = Int(digits), declaredVariables.indices.contains(index) else { return nil }
            flushLiteral()
            plan.appendVariable(index)
        }
        flushLiteral()
        return plan.build()
    }

    /// Renders with swift-mustache, the reference every render plan must agree with.
    /// - Parameter values: by declared variable index; nil for an optional variable not given.
    func renderWithMustache(_ values: [TemplateValue?], declaredVariables: [String]) -> String {
        var context: [String: Any] = [:]
        for (index, value) in values.enumerated() {
            guard let value else { continue }
            switch value {
            case .text(let text): context[declaredVariables[index]] = text
            case .flag(let flag): context[declaredVariables[index]] = flag
            }
        }
        return mustache.render(context)
    }

    /// Renders to a string: through the plan when there is one, else with swift-mustache.
    func render(_ values: [TemplateValue?], declaredVariables: [String]) -> String {
        guard let plan else { return renderWithMustache(values, declaredVariables: declaredVariables) }
        var text = ""
        for segment in plan.segments {
            switch segment {
            case .literal(let literal, _, _): text += plan.texts[literal]
            case .variable(let index): text += values[index]?.text ?? ""
            }
        }
        return text
    }

    /// Exactly `render(values)` for a public caller that has names and strings: a test, a fuzzer, a tool.
    /// - Parameter values: variable name to value; names not declared are ignored.
    public func render(_ values: [String: String], declaredVariables: [String]) -> (plan: String?, mustache: String) {
        let ordered = declaredVariables.map { values[$0].map(TemplateValue.text) }
        return (
            plan == nil ? nil : render(ordered, declaredVariables: declaredVariables),
            renderWithMustache(ordered, declaredVariables: declaredVariables)
        )
    }

    /// Exactly what `render` writes into an answer, for a public caller that has names and strings.
    public func writeRendered(_ values: [String: String], declaredVariables: [String], into writer: inout JSONWriter) {
        writeRendered(declaredVariables.map { values[$0].map(TemplateValue.text) }, declaredVariables: declaredVariables, into: &writer)
    }

    /// Whether rendering goes through a precomputed plan rather than swift-mustache.
    public var hasRenderPlan: Bool { plan != nil }
}

/// A template without sections, taken apart once: its literal parts, JSON-escaped, and where each variable goes.
///
/// The segments hold only integers and every literal's escaped bytes sit in one array, so writing a rendering
/// walks the plan without retaining anything per segment.
final class RenderPlan: Sendable {
    /// A piece of a rendered template.
    enum Segment: Sendable {
        /// Text that is the same in every rendering: its index in `texts`, its JSON-escaped form (without quotes)
        /// as a range of `json`, and its length in Unicode scalars.
        case literal(Int, json: Range<Int>, scalars: Int)
        /// The value of the declared variable at this index.
        case variable(Int)
    }

    let segments: [Segment]
    /// Every literal's JSON-escaped bytes, one after the other.
    let json: [UInt8]
    /// Every literal's text.
    let texts: [String]

    private init(segments: [Segment], json: [UInt8], texts: [String]) {
        self.segments = segments
        self.json = json
        self.texts = texts
    }

    struct Builder {
        private var segments: [Segment] = []
        private var json = JSONWriter()
        private var texts: [String] = []

        mutating func appendLiteral(_ literal: String.UnicodeScalarView) {
            let text = String(literal)
            let start = json.bytes.count
            json.stringContents(text)
            segments.append(.literal(texts.count, json: start..<json.bytes.count, scalars: literal.count))
            texts.append(text)
        }

        mutating func appendVariable(_ index: Int) {
            segments.append(.variable(index))
        }

        func build() -> RenderPlan {
            RenderPlan(segments: segments, json: json.bytes, texts: texts)
        }
    }
}

/// Every problem of one template.
public struct TemplateProblems: Error, Sendable {
    public var problems: [PromptTemplate.Problem]

    init(_ problems: [PromptTemplate.Problem]) { self.problems = problems }
}

/// A variable's value as a template sees it: text, or a boolean that also decides sections.
enum TemplateValue: Sendable, Equatable {
    case text(String)
    case flag(Bool)

    var text: String {
        switch self {
        case .text(let text): text
        case .flag(let flag): flag ? "true" : "false"
        }
    }
}

/// Finds the tags of a template that swift-mustache has already parsed: the variables it references and what it
/// uses beyond variantd's subset.
enum TemplateScanner {
    struct Result {
        var variables: [String] = []
        var unsupported: [String] = []
        var hasSections = false
    }

    static func scan(_ source: String) -> Result {
        var result = Result()
        let bytes = Array(source.utf8)
        var openSections = 0
        var index = 0
        func noteVariable(_ name: String) {
            if !result.variables.contains(name) { result.variables.append(name) }
        }
        func unsupported(_ message: String) {
            if !result.unsupported.contains(message) { result.unsupported.append(message) }
        }
        while index + 1 < bytes.count {
            guard bytes[index] == UInt8(ascii: "{"), bytes[index + 1] == UInt8(ascii: "{") else {
                index += 1
                continue
            }
            var start = index + 2
            var closing: [UInt8] = Array("}}".utf8)
            var sigil: UInt8 = 0
            if start < bytes.count {
                switch bytes[start] {
                case UInt8(ascii: "{"):
                    closing = Array("}}}".utf8)
                    sigil = UInt8(ascii: "&")
                    start += 1
                case UInt8(ascii: "#"), UInt8(ascii: "^"), UInt8(ascii: "/"), UInt8(ascii: "!"), UInt8(ascii: "&"),
                    UInt8(ascii: ">"), UInt8(ascii: "<"), UInt8(ascii: "$"), UInt8(ascii: "="), UInt8(ascii: "%"):
                    sigil = bytes[start]
                    start += 1
                default: break
                }
            }
            guard let end = find(closing, in: bytes, from: start) else { break }
            index = end + closing.count
            let name = String(decoding: bytes[start..<end], as: UTF8.self).trimmingASCIIWhitespace()
            switch sigil {
            case UInt8(ascii: "!"):
                continue
            case UInt8(ascii: ">"), UInt8(ascii: "<"):
                unsupported("partials ({{>name}}, {{<name}}): a prompt is one self-contained template")
                continue
            case UInt8(ascii: "$"):
                unsupported("blocks ({{$name}}): a prompt is one self-contained template")
                continue
            case UInt8(ascii: "="):
                unsupported("set-delimiter tags ({{=<% %>=}})")
                // The rest is written with other delimiters; reading it with these would guess.
                return result
            case UInt8(ascii: "%"):
                unsupported("pragmas ({{%...}}): variantd renders every template as plain text")
                continue
            case UInt8(ascii: "/"):
                openSections = max(0, openSections - 1)
                continue
            case UInt8(ascii: "#"), UInt8(ascii: "^"):
                result.hasSections = true
                if name == "." {
                    unsupported("a section on '.'")
                } else if isPlainName(name) {
                    noteVariable(name)
                } else {
                    unsupported("'\(name)': dotted names and transforms; a variable is a plain name")
                }
                openSections += 1
            default:
                if name == "." {
                    if openSections == 0 { unsupported("'{{.}}' outside a section") }
                } else if isPlainName(name) {
                    noteVariable(name)
                } else {
                    unsupported("'\(name)': dotted names and transforms; a variable is a plain name")
                }
            }
        }
        return result
    }

    private static func find(_ needle: [UInt8], in bytes: [UInt8], from start: Int) -> Int? {
        guard start <= bytes.count - needle.count else { return nil }
        var index = start
        while index <= bytes.count - needle.count {
            if bytes[index] == needle[0], bytes[index..<index + needle.count].elementsEqual(needle) { return index }
            index += 1
        }
        return nil
    }

    /// `[A-Za-z_][A-Za-z0-9_]*`, the variable names a version may declare.
    static func isPlainName(_ name: String) -> Bool {
        DocumentValidator.isValidVariableName(name)
    }
}

extension String {
    func trimmingASCIIWhitespace() -> String {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        let bytes = Array(utf8)
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) })
        else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }
}
