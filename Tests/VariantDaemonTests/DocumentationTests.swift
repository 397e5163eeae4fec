import Foundation
import Glibc
import Testing
import VariantCore
import VariantDaemon

/// `README.md` and `docs/*.md` say only what is true: every command shown runs and prints what is shown, every
/// link resolves, and the README stays inside the repository (docs/testing.md, "The documentation is tested").
///
/// Fenced blocks, by their language:
/// - `sh` with lines starting `$ `: a transcript. Each command (a line ending in `\` continues on the next) runs
///   with `bash -c` in the repository, against a real daemon on `examples/variantd.json` started for the file
///   (commands run in the file's order, so a `record` before a `stats` counts). Its standard output and error
///   together must match the lines after it up to the next `$ `. `/tmp/variantd.sock` in a command stands for
///   the test daemon's socket (and that socket is written back as `/tmp/variantd.sock` in the output),
///   `.build/release/` for the folder of the built products, which also comes first on `PATH`.
///   `$ export NAME=VALUE` sets a variable for the file's later commands. In the output shown, a line `...`
///   matches any number of lines and `…` within a line any text (a time, an uptime).
/// - any other `sh` block: must be marked as not run, by a line `<!-- not run: WHY -->` just before its fence
///   (it needs root, systemd, the network or a long run); it is checked with `bash -n`.
/// - `python`: compiled with `python3` (not run); `json`: parsed; others (`swift`, plain text): not checked.
@Suite struct DocumentationTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let documentedSocket = "/tmp/variantd.sock"
    static let documentedProducts = ".build/release/"

    /// README.md and docs/*.md, as paths relative to the repository.
    static var documents: [String] {
        let docs = (try? FileManager.default.contentsOfDirectory(atPath: repository + "/docs")) ?? []
        return ["README.md"] + docs.filter { $0.hasSuffix(".md") }.sorted().map { "docs/" + $0 }
    }

    static func read(_ document: String) throws -> String {
        try String(contentsOfFile: repository + "/" + document, encoding: .utf8)
    }

    // MARK: Transcripts

    @Test(arguments: documents)
    func everyTranscriptPrintsWhatItShows(document: String) throws {
        let blocks = Markdown.fencedBlocks(try Self.read(document))
        let transcripts = blocks.filter { $0.language == "sh" && $0.isTranscript }
        guard !transcripts.isEmpty else { return }
        let daemon = try DaemonFixture(config: exampleConfig)
        defer { daemon.stop() }
        var environment = ["PATH": DaemonFixture.productsDirectory.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")]
        for block in transcripts {
            for step in try Transcript.steps(block.text) {
                if let (name, value) = step.export {
                    environment[name] = value.replacingOccurrences(of: Self.documentedSocket, with: daemon.socketPath)
                    continue
                }
                let command = step.command
                    .replacingOccurrences(of: Self.documentedSocket, with: daemon.socketPath)
                    .replacingOccurrences(of: Self.documentedProducts, with: DaemonFixture.productsDirectory.path + "/")
                let result = try Shell.run(command, in: Self.repository, environment: environment)
                let printed = result.output.replacingOccurrences(of: daemon.socketPath, with: Self.documentedSocket)
                #expect(
                    Transcript.matches(shown: step.output, printed: Transcript.lines(printed)),
                    """
                    \(document):\(block.line): `\(step.command)` (exit \(result.status)) printed:
                    \(printed)
                    where the document shows:
                    \(step.output.joined(separator: "\n"))
                    """)
            }
        }
    }

    @Test(arguments: documents)
    func everyOtherBlockIsMarkedAndWellFormed(document: String) throws {
        for block in Markdown.fencedBlocks(try Self.read(document)) {
            let place = "\(document):\(block.line)"
            switch block.language {
            case "sh":
                if block.isTranscript {
                    #expect(block.notRunBecause == nil, "\(place): a transcript marked as not run")
                    continue
                }
                #expect(
                    block.notRunBecause?.isEmpty == false,
                    "\(place): an sh block with no `$ ` transcript needs `<!-- not run: WHY -->` before it")
                let check = try Shell.run("bash -n", in: Self.repository, input: block.text)
                #expect(check.status == 0, "\(place): bash -n: \(check.output)")
            case "python":
                let check = try Shell.run(
                    "python3 -c 'import sys; compile(sys.stdin.read(), sys.argv[1], \"exec\")' '\(place)'",
                    in: Self.repository, input: block.text)
                #expect(check.status == 0, "\(place): \(check.output)")
            case "json":
                do { _ = try JSONParser.parse(Array(block.text.utf8)) } catch {
                    Issue.record("\(place): not JSON: \(error)")
                }
            default:
                continue
            }
        }
    }

    /// The config version shown anywhere is the one the example hashes to today, as the daemon computes it.
    @Test func everyConfigVersionShownIsTheExamples() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        defer { daemon.stop() }
        let version = try #require(daemon.ask(#"{"op":"health"}"#)["config_version"]?.stringValue)
        let pattern = try Regex(#"sha256:[0-9a-f]{16}"#)
        for document in Self.documents {
            let text = try Self.read(document)
            for match in text.matches(of: pattern) {
                let shown = String(text[match.range])
                #expect(shown == version, "\(document) shows \(shown) where the example is \(version)")
            }
        }
    }

    /// docs/operations.md names every log event and metadata key of the code's one list, and no other.
    @Test func theLogEventsListedAreTheCodes() throws {
        let text = try Self.read("docs/operations.md")
        let section = try #require(text.range(of: "### Log events").map { text[$0.upperBound...] })
        let end = section.range(of: "\n## ")?.lowerBound ?? section.endIndex
        let names = section[..<end].matches(of: try Regex(#"`([a-z_]+(?:\.[a-z_]+)*)`"#)).map { String(section[$0.range].dropFirst().dropLast()) }
        let events = Set(LogEventName.allCases.map(\.rawValue))
        let keys = Set(LogMetadataKey.allCases.map(\.rawValue))
        #expect(events.count == LogEventName.allCases.count && keys.count == LogMetadataKey.allCases.count)
        let shown = Set(names)
        #expect(events.subtracting(shown).isEmpty, "not in docs/operations.md: \(events.subtracting(shown).sorted())")
        #expect(keys.subtracting(shown).isEmpty, "not in docs/operations.md: \(keys.subtracting(shown).sorted())")
        let unknown = shown.subtracting(events).subtracting(keys).subtracting(["LogEventName", "LogMetadataKey"])
        #expect(unknown.isEmpty, "in docs/operations.md but not in the code: \(unknown.sorted())")
    }

    // MARK: Links

    @Test func theReadmeDoesNotLinkOutsideTheRepository() throws {
        let readme = try Self.read("README.md")
        for scheme in ["http://", "https://", "ftp://", "mailto:"] {
            let named = readme.contains(scheme)
            #expect(!named, "README.md names a \(scheme) address; put it in docs/ instead")
        }
        for target in Markdown.links(readme) {
            #expect(!target.hasPrefix("/") && !target.hasPrefix(".."), "README.md links \(target), outside the repository")
        }
    }

    @Test(arguments: documents)
    func everyRelativeLinkResolves(document: String) throws {
        for problem in Markdown.brokenLinks(in: document, root: Self.repository) {
            Issue.record("\(problem)")
        }
    }

    /// scripts/install puts the README, docs/ and what they link to in the doc folder, so the links work there too.
    @Test func theInstalledDocsLinksResolve() throws {
        let stage = try SystemdTools.temporaryDirectory("variantd-docs-install")
        defer { try? FileManager.default.removeItem(atPath: stage) }
        let install = try SystemdTools.run(
            Self.repository + "/scripts/install", ["--binaries", DaemonFixture.productsDirectory.path],
            environment: ["DESTDIR": stage])
        #expect(install.status == 0, "\(install.output)")
        let docdir = stage + "/usr/local/share/doc/variantd"
        for document in Self.documents {
            #expect(FileManager.default.fileExists(atPath: docdir + "/" + document), "\(document) not installed")
            for problem in Markdown.brokenLinks(in: document, root: docdir) {
                Issue.record("installed: \(problem)")
            }
        }
    }

    // MARK: The checker checks

    @Test func theTranscriptMatcherAcceptsOnlyWhatItShould() {
        #expect(Transcript.matches(shown: ["a", "b"], printed: ["a", "b"]))
        #expect(!Transcript.matches(shown: ["a", "b"], printed: ["a", "b", "c"]))
        #expect(!Transcript.matches(shown: ["a"], printed: ["b"]))
        #expect(Transcript.matches(shown: ["a", "...", "d"], printed: ["a", "b", "c", "d"]))
        #expect(Transcript.matches(shown: ["a", "...", "d"], printed: ["a", "d"]))
        #expect(!Transcript.matches(shown: ["a", "...", "d"], printed: ["a", "b"]))
        #expect(Transcript.matches(shown: ["up …s, since …"], printed: ["up 3.2s, since 2026-12-02T09:00:00Z"]))
        #expect(!Transcript.matches(shown: ["up …s"], printed: ["up 3.2m"]))
        #expect(!Transcript.matches(shown: ["x…"], printed: ["y1"]))
        #expect(Transcript.matches(shown: [], printed: []))
        #expect(!Transcript.matches(shown: [], printed: ["unexpected"]))
    }

    @Test func theMarkdownReaderFindsBlocksMarksAndLinks() throws {
        let text = """
            Intro [a](docs/a.md#x) and `[b](not-a-link)`.

            <!-- not run: needs root -->
            ```sh
            sudo true
            ```

            ```sh
            $ echo one \\
                two
            one two
            $ export A=b
            ```
            ```python
            print("[c](inside-code)")
            ```
            """
        let blocks = Markdown.fencedBlocks(text)
        #expect(blocks.map(\.language) == ["sh", "sh", "python"])
        #expect(blocks[0].notRunBecause == "needs root" && !blocks[0].isTranscript)
        #expect(blocks[1].notRunBecause == nil && blocks[1].isTranscript)
        let steps = try Transcript.steps(blocks[1].text)
        #expect(steps.count == 2)
        #expect(steps[0].command == "echo one \\\n    two" && steps[0].output == ["one two"])
        #expect(steps[1].export?.0 == "A" && steps[1].export?.1 == "b")
        #expect(Markdown.links(text) == ["docs/a.md#x"])
        #expect(Markdown.anchors(in: "# Top\n## 4. Guardrails: an always-valid test\n### Simulation (`x-y`, and z)\n## Top")
            == ["top", "4-guardrails-an-always-valid-test", "simulation-x-y-and-z", "top-1"])
    }
}

/// A fenced code block of a Markdown document.
struct FencedBlock {
    var language: String
    var text: String
    /// The line of its opening fence, counted from 1.
    var line: Int
    /// The reason of a `<!-- not run: WHY -->` line just before the fence.
    var notRunBecause: String?

    var isTranscript: Bool { text.split(separator: "\n").contains { $0.hasPrefix("$ ") } }
}

enum Markdown {
    static func fencedBlocks(_ text: String) -> [FencedBlock] {
        var blocks: [FencedBlock] = []
        var open: FencedBlock?
        var previous = ""
        for (index, line) in text.components(separatedBy: "\n").enumerated() {
            if var block = open {
                if line.hasPrefix("```") {
                    blocks.append(block)
                    open = nil
                } else {
                    block.text += line + "\n"
                    open = block
                }
            } else if line.hasPrefix("```") {
                var reason: String?
                let marker = previous.trimmingCharacters(in: .whitespaces)
                if marker.hasPrefix("<!-- not run:"), marker.hasSuffix("-->") {
                    reason = String(marker.dropFirst("<!-- not run:".count).dropLast(3))
                        .trimmingCharacters(in: .whitespaces)
                }
                open = FencedBlock(
                    language: String(line.dropFirst(3)).trimmingCharacters(in: .whitespaces), text: "",
                    line: index + 1, notRunBecause: reason)
            }
            if !line.trimmingCharacters(in: .whitespaces).isEmpty { previous = line }
        }
        return blocks
    }

    /// The text outside fenced blocks and inline code.
    static func prose(_ text: String) -> String {
        var kept: [String] = []
        var inBlock = false
        for line in text.components(separatedBy: "\n") {
            if line.hasPrefix("```") {
                inBlock.toggle()
                continue
            }
            if !inBlock { kept.append(line) }
        }
        return kept.joined(separator: "\n").replacing(try! Regex("`[^`\\n]*`"), with: "")
    }

    /// The targets of `[text](target)` links in the prose.
    static func links(_ text: String) -> [String] {
        let text = prose(text)
        return text.matches(of: try! Regex(#"\]\(([^)\s]+)\)"#)).compactMap { match in
            match.output[1].range.map { String(text[$0]) }
        }
    }

    /// GitHub's anchors for the headings of a document: lower case, punctuation but `-` and `_` dropped, spaces
    /// as `-`, and `-1`, `-2`... for repeats.
    static func anchors(in text: String) -> [String] {
        var seen: [String: Int] = [:]
        var anchors: [String] = []
        for line in prose(text.replacingOccurrences(of: "`", with: "")).components(separatedBy: "\n")
        where line.hasPrefix("#") {
            let title = line.drop { $0 == "#" }.trimmingCharacters(in: .whitespaces).lowercased()
            let slug = String(
                title.compactMap { character -> Character? in
                    if character == " " { return "-" }
                    return character.isLetter || character.isNumber || character == "-" || character == "_"
                        ? character : nil
                })
            let count = seen[slug, default: 0]
            seen[slug] = count + 1
            anchors.append(count == 0 ? slug : "\(slug)-\(count)")
        }
        return anchors
    }

    /// Every relative link of `document` (a path under `root`) whose file, or heading after `#`, does not exist.
    static func brokenLinks(in document: String, root: String) -> [String] {
        guard let text = try? String(contentsOfFile: root + "/" + document, encoding: .utf8) else {
            return ["\(document): cannot be read"]
        }
        let folder = URL(fileURLWithPath: root + "/" + document).deletingLastPathComponent()
        var problems: [String] = []
        for target in links(text) where !target.contains("://") && !target.hasPrefix("mailto:") {
            let parts = target.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)
            let path = String(parts[0])
            let file = path.isEmpty ? URL(fileURLWithPath: root + "/" + document) : folder.appendingPathComponent(path)
            guard FileManager.default.fileExists(atPath: file.standardized.path) else {
                problems.append("\(document) links \(target): no \(file.standardized.path)")
                continue
            }
            if parts.count == 2, file.pathExtension == "md" {
                let headings = anchors(in: (try? String(contentsOf: file, encoding: .utf8)) ?? "")
                if !headings.contains(String(parts[1])) {
                    problems.append("\(document) links \(target): no heading #\(parts[1]) in \(file.lastPathComponent)")
                }
            }
        }
        return problems
    }
}

/// One `$ ` command of a transcript and the output shown for it.
struct TranscriptStep {
    var command: String
    var output: [String]

    /// `export NAME=VALUE`, as a name and a value.
    var export: (String, String)? {
        guard command.hasPrefix("export "), let equals = command.firstIndex(of: "=") else { return nil }
        return (String(command[command.index(command.startIndex, offsetBy: 7)..<equals]),
                String(command[command.index(after: equals)...]))
    }
}

enum Transcript {
    static func steps(_ text: String) throws -> [TranscriptStep] {
        var steps: [TranscriptStep] = []
        var continuing = false
        for line in text.components(separatedBy: "\n").dropLast() {
            if continuing, var step = steps.popLast() {
                step.command += "\n" + line
                steps.append(step)
                continuing = line.hasSuffix("\\")
            } else if line.hasPrefix("$ ") {
                steps.append(TranscriptStep(command: String(line.dropFirst(2)), output: []))
                continuing = line.hasSuffix("\\")
            } else if var step = steps.popLast() {
                step.output.append(line)
                steps.append(step)
            } else {
                throw FixtureError("a transcript starts with output, not a `$ ` command: \(line)")
            }
        }
        return steps
    }

    static func lines(_ output: String) -> [String] {
        var lines = output.components(separatedBy: "\n")
        if lines.last == "" { lines.removeLast() }
        return lines
    }

    /// Whether the printed lines are the lines shown, with `...` lines and `…` inside lines as wildcards.
    static func matches(shown: [String], printed: [String]) -> Bool {
        matches(shown[...], printed[...])
    }

    private static func matches(_ shown: ArraySlice<String>, _ printed: ArraySlice<String>) -> Bool {
        guard let first = shown.first else { return printed.isEmpty }
        if first == "..." {
            return (printed.startIndex...printed.endIndex).contains { matches(shown.dropFirst(), printed[$0...]) }
        }
        guard let line = printed.first, lineMatches(shown: first, printed: line) else { return false }
        return matches(shown.dropFirst(), printed.dropFirst())
    }

    static func lineMatches(shown: String, printed: String) -> Bool {
        let pieces = shown.components(separatedBy: "…")
        guard pieces.count > 1 else { return shown == printed }
        guard printed.hasPrefix(pieces[0]), printed.dropFirst(pieces[0].count).hasSuffix(pieces[pieces.count - 1])
        else { return false }
        var rest = printed.dropFirst(pieces[0].count).dropLast(pieces[pieces.count - 1].count)
        for piece in pieces.dropFirst().dropLast() {
            guard let found = rest.range(of: piece) else { return false }
            rest = rest[found.upperBound...]
        }
        return true
    }
}

enum Shell {
    /// Runs `command` with bash in `folder`, with `input` on standard input, and returns its status and output
    /// (standard output and error together).
    static func run(_ command: String, in folder: String, environment: [String: String] = [:], input: String = "")
        throws -> (status: Int32, output: String)
    {
        try SystemdTools.run("/bin/bash", ["-c", command], environment: environment, input: input, in: folder)
    }
}
