import PropertyBased
import Testing
@testable import VariantCore

@Suite struct PromptTemplateTests {
    static let declared = ["name", "tone", "flag"]
    /// What the plan's markers look like (noncharacters, which a Swift literal cannot hold), as a value.
    static let markerLookalike = String(Unicode.Scalar(0xFDD0 as UInt32)!) + "0" + String(Unicode.Scalar(0xFDD1 as UInt32)!)

    func template(_ source: String, declared: [String] = Self.declared) throws -> PromptTemplate {
        try PromptTemplate(source, declaredVariables: declared)
    }

    func problems(_ source: String, declared: [String] = Self.declared) -> [PromptTemplate.Problem] {
        do {
            _ = try PromptTemplate(source, declaredVariables: declared)
            return []
        } catch {
            return error.problems
        }
    }

    @Test(arguments: ["{{name}}", "{{{name}}}", "{{& name}}", "{{#tone}}{{name}}{{/tone}}", "{{#tone}}{{.}}{{/tone}}"])
    func htmlIsNotEscaped(source: String) throws {
        let rendered = try template(source).render(["name": #"<b>&"'"#, "tone": #"<b>&"'"#], declaredVariables: Self.declared)
        #expect(rendered.mustache == #"<b>&"'"#)
        if let plan = rendered.plan { #expect(plan == #"<b>&"'"#) }
    }

    @Test func aTemplateWithoutSectionsHasAPlanAndOneWithSectionsDoesNot() throws {
        #expect(try template("Hi {{name}}, {{! a comment }}tone {{{tone}}}").hasRenderPlan)
        #expect(try !template("Hi {{#tone}}({{tone}}){{/tone}}").hasRenderPlan)
        #expect(try !template("Hi {{^tone}}plain{{/tone}}").hasRenderPlan)
    }

    /// Standalone comments take their line with them, in the plan as in swift-mustache.
    @Test(arguments: [
        "Hello {{name}}!",
        "{{! standalone }}\nHello {{name}}\n  {{! indented standalone }}\nbye",
        "{{name}}{{tone}}{{name}}",
        "a\r\n{{name}}\r\n{{!x}}\r\nb",
        "  {{name}}  \n",
        "{ {{name}} } {{{tone}}}{{&flag}}",
        "",
        "no tags at all, \"quotes\" \\ and \u{1} control",
    ])
    func thePlanRendersExactlyWhatSwiftMustacheRenders(source: String) throws {
        let compiled = try template(source)
        #expect(compiled.hasRenderPlan)
        for values in [[:], ["name": "Ada"], ["name": "A\nB", "tone": "{{name}}", "flag": Self.markerLookalike]] {
            let rendered = compiled.render(values, declaredVariables: Self.declared)
            #expect(rendered.plan == rendered.mustache, "values \(values)")
        }
    }

    @Test func aValueThatLooksLikeATagIsNotRenderedAgain() throws {
        let rendered = try template("Hi {{name}}").render(["name": "{{tone}}"], declaredVariables: Self.declared)
        #expect(rendered.plan == "Hi {{tone}}")
        #expect(rendered.mustache == "Hi {{tone}}")
    }

    @Test func sectionsRenderWhenTheirVariableIsGiven() throws {
        let compiled = try template("Hi{{#tone}} in a {{tone}} tone{{/tone}}{{^tone}} plainly{{/tone}}.")
        #expect(compiled.render(["tone": "warm"], declaredVariables: Self.declared).mustache == "Hi in a warm tone.")
        #expect(compiled.render([:], declaredVariables: Self.declared).mustache == "Hi plainly.")
    }

    @Test func randomTemplatesRenderTheSameThroughThePlanAndSwiftMustache() async {
        let pieces = [
            "{{name}}", "{{{tone}}}", "{{& flag}}", " ", "\n", "\r\n", "text", "{{! c }}", "\t", "{", "}", "\"", "\\",
            "é", "{{ name }}", "\u{0}",
        ]
        await propertyCheck(count: 300, input: Gen.int(in: 0...(pieces.count - 1)).array(of: 0...12), Gen.letterOrNumber.string(of: 0...6)) {
            indexes, value in
            let source = indexes.map { pieces[$0] }.joined()
            guard let compiled = try? PromptTemplate(source, declaredVariables: Self.declared) else { return }
            let rendered = compiled.render(["name": value, "tone": value + "\n"], declaredVariables: Self.declared)
            #expect(rendered.plan == nil || rendered.plan == rendered.mustache, "template \(source.debugDescription)")
        }
    }

    @Test(arguments: [
        "{{> footer}}", "{{< base}}{{/base}}", "{{$block}}x{{/block}}", "{{=<% %>=}}<% name %>", "{{%CONTENT_TYPE:HTML}}",
        "{{user.name}}", "{{uppercased(name)}}", "{{.}}", "{{#.}}x{{/.}}",
    ])
    func mustacheBeyondTheSubsetIsRejected(source: String) {
        let found = problems(source)
        #expect(found.contains { if case .unsupported = $0 { true } else { false } }, "\(found)")
    }

    @Test func aVariableTheVersionDoesNotDeclareIsAProblem() {
        #expect(problems("Hi {{name}} {{who}}{{#what}}{{/what}}") == [.undeclaredVariable("who"), .undeclaredVariable("what")])
    }

    @Test func aTemplateThatDoesNotParseNamesItsLineAndColumn() {
        let found = problems("line one\nHi {{#name}} unclosed")
        guard case .syntax(let message)? = found.first else {
            Issue.record("expected a syntax problem, got \(found)")
            return
        }
        #expect(message.hasPrefix("line 2, "), "\(message)")
        #expect(problems("Hi {{name").count == 1)
        #expect(problems("{{#a}}x{{/b}}").count == 1)
    }

    @Test func writingFromThePlanGivesTheSameJSONStringAsEscapingTheRenderedText() throws {
        let compiled = try template("Line \"1\"\n\t{{name}} \\ {{tone}}\u{1}")
        let values: [TemplateValue?] = [.text("a\"b\n"), nil, .flag(true)]
        var planned = JSONWriter()
        compiled.writeRendered(values, declaredVariables: Self.declared, into: &planned)
        var escaped = JSONWriter()
        escaped.string(compiled.renderWithMustache(values, declaredVariables: Self.declared))
        #expect(planned.bytes == escaped.bytes)
    }
}
