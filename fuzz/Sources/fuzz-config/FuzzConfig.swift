// libFuzzer target: a configuration document from a configuration source, through `ConfigDocument.validate`.
//
// Invariants:
//  - validation returns a document or throws ConfigValidationError with at least one issue; every issue's path
//    starts with "$"; an invalid_json issue comes alone, at path "$";
//  - a rejected document's issues, recorded as the daemon's last load error, still give a valid `config` answer;
//  - in a document that validates, every experiment is sound (control and winner indices in range, weights sum
//    to 100%) and assigns units at several instants, with and without matching attributes, following the
//    decision order (PROTOCOL.md section 2) without crashing;
//  - names are compared as bytes (PROTOCOL.md: no Unicode normalisation): every variant's prompt is, byte for
//    byte, the name of a prompt of the document, and a completed experiment's winner is, byte for byte, the
//    name of the variant it serves;
//  - served by the Responder, every experiment answers `assign` and assigned `prompt` requests, and every prompt
//    answers `prompt` requests for its latest and each version, with ok:true and a valid response line.
import FuzzSupport
import VariantCore

/// Bounds the work per input, so that large but valid documents do not hit the timeout on their own.
let maximumExperimentsChecked = 64
let maximumPromptsChecked = 64

let units = ["u", "user-42", "ü-\u{1F600}-unit", String(repeating: "x", count: Request.maximumUnitBytes)]

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = count == 0 ? [] : Array(UnsafeBufferPointer(start: start, count: count))
    let document: ConfigDocument
    do {
        document = try ConfigDocument.validate(input)
    } catch {
        checkRejection(error, input: input)
        return 0
    }
    checkDocument(document, input: input)
    return 0
}

func checkRejection(_ error: ConfigValidationError, input: [UInt8]) {
    guard !error.issues.isEmpty else { fuzzFail("rejected with no issue", input: input) }
    for issue in error.issues where !issue.path.hasPrefix("$") {
        fuzzFail("issue path does not start with '$': \(issue)", input: input)
    }
    if error.issues.contains(where: { $0.code == .invalidJSON }) {
        guard error.issues.count == 1, error.issues[0].path == "$" else {
            fuzzFail("invalid_json must be the only issue, at $: \(error)", input: input)
        }
    }
    // The daemon records the failure and reports it in `config` answers.
    let failure = ConfigLoadFailure(
        code: "invalid_config", message: error.description, at: fuzzNow, problems: Array(error.issues.prefix(200)))
    let snapshot = ServingSnapshot(config: nil, source: "file:/fuzz.json", lastError: nil, startedAt: fuzzNow)
        .recording(failure)
    let response = respondChecked(
        Array(#"{"id":1,"op":"config"}"#.utf8), snapshot: snapshot, now: fuzzNow, context: "config status")
    guard response["ok"] == .bool(true) else { fuzzFail("config status is not ok", input: input) }
}

func checkDocument(_ document: ConfigDocument, input: [UInt8]) {
    let promptNames = document.prompts.map { key, prompt in
        guard key.utf8.elementsEqual(prompt.name.utf8) else {
            fuzzFail("prompt keyed '\(key)' is named '\(prompt.name)'", input: input)
        }
        return Array(key.utf8)
    }
    for experiment in document.experiments {
        for variant in experiment.variants where !promptNames.contains(Array(variant.prompt.utf8)) {
            fuzzFail("experiment '\(experiment.name)' variant '\(variant.name)' uses prompt '\(variant.prompt)' (UTF-8 \(printable(variant.prompt.utf8))), which no prompt of the document is named byte for byte", input: input)
        }
        guard let found = document.experiment(named: experiment.name), found.name.utf8.elementsEqual(experiment.name.utf8) else {
            fuzzFail("experiment '\(experiment.name)' is not found by its own name", input: input)
        }
    }
    checkWinners(document, input: input)
    for experiment in document.experiments.prefix(maximumExperimentsChecked) {
        checkExperiment(experiment, input: input)
    }
    let snapshot = ServingSnapshot(
        config: LoadedConfig(
            document: document, version: LoadedConfig.version(of: input), source: "file:/fuzz.json",
            loadedAt: fuzzNow),
        source: "file:/fuzz.json", lastError: nil, startedAt: fuzzNow)
    for experiment in document.experiments.prefix(maximumExperimentsChecked) {
        for attributes in attributeSets(for: experiment) {
            for op in ["assign", "prompt"] {
                var line = JSONWriter()
                line.raw("{\"id\":\"x\",\"op\":")
                line.string(op)
                line.raw(",\"experiment\":")
                line.string(experiment.name)
                line.raw(",\"unit\":\"user-42\",\"attributes\":")
                line.value(.object(attributes))
                line.raw("}")
                let response = respondChecked(line.bytes, snapshot: snapshot, now: fuzzNow, context: "served \(op)")
                guard response["ok"] == .bool(true) else {
                    fuzzFail("a valid document's experiment '\(experiment.name)' fails \(op): \(response)", input: input)
                }
            }
        }
    }
    for prompt in document.prompts.values.sorted(by: { $0.name < $1.name }).prefix(maximumPromptsChecked) {
        guard !prompt.versions.isEmpty else { fuzzFail("prompt '\(prompt.name)' has no version", input: input) }
        for number in [nil] + prompt.versions.prefix(16).map(\.number) {
            var line = JSONWriter()
            line.raw("{\"op\":\"prompt\",\"prompt\":")
            line.string(prompt.name)
            if let number {
                line.raw(",\"prompt_version\":")
                line.integer(number)
            }
            line.raw("}")
            let response = respondChecked(line.bytes, snapshot: snapshot, now: fuzzNow, context: "served prompt")
            guard response["ok"] == .bool(true) else {
                fuzzFail("a valid document's prompt '\(prompt.name)' version \(number.map(String.init) ?? "latest") fails: \(response)", input: input)
            }
        }
    }
    for op in ["config", "health"] {
        respondChecked(Array("{\"op\":\"\(op)\"}".utf8), snapshot: snapshot, now: fuzzNow, context: op)
    }
}

func checkExperiment(_ experiment: Experiment, input: [UInt8]) {
    let variants = experiment.variants
    guard variants.count >= 2 else { fuzzFail("experiment '\(experiment.name)' has \(variants.count) variants", input: input) }
    guard variants.indices.contains(experiment.controlIndex), variants[experiment.controlIndex].isControl,
        variants.filter(\.isControl).count == 1
    else { fuzzFail("experiment '\(experiment.name)' has a bad control index", input: input) }
    let total = variants.reduce(0) { $0 + $1.weightBasisPoints }
    guard total == 10000, variants.allSatisfy({ (0...10000).contains($0.weightBasisPoints) }) else {
        fuzzFail("experiment '\(experiment.name)' weights sum to \(total) bp", input: input)
    }
    guard (0...10000).contains(experiment.exposureBasisPoints) else {
        fuzzFail("experiment '\(experiment.name)' exposure \(experiment.exposureBasisPoints) bp", input: input)
    }
    if experiment.status == .completed {
        guard let winner = experiment.winnerIndex, variants.indices.contains(winner) else {
            fuzzFail("completed experiment '\(experiment.name)' has no valid winner index", input: input)
        }
    } else if experiment.winnerIndex != nil {
        fuzzFail("experiment '\(experiment.name)' is \(experiment.status) but has a winner", input: input)
    }
    if let start = experiment.start, let end = experiment.end, !(start < end) {
        fuzzFail("experiment '\(experiment.name)' window is inverted", input: input)
    }

    var instants = [fuzzNow]
    for bound in [experiment.start, experiment.end].compactMap({ $0 }) {
        instants += [bound, Timestamp(secondsSinceEpoch: bound.secondsSinceEpoch - 0.5)]
    }
    for now in instants {
        for attributes in attributeSets(for: experiment) {
            for unit in units {
                let assignment = experiment.assign(unit: unit, attributes: attributes, now: now)
                checkAssignment(assignment, experiment: experiment, now: now, input: input)
            }
        }
    }
}

func checkAssignment(_ assignment: Assignment, experiment: Experiment, now: Timestamp, input: [UInt8]) {
    let context = "experiment '\(experiment.name)' at \(now.secondsSinceEpoch): \(assignment)"
    guard experiment.variants.indices.contains(assignment.variantIndex) else {
        fuzzFail("\(context): variant index out of range", input: input)
    }
    guard assignment.enrolled == (assignment.reason == .assigned) else {
        fuzzFail("\(context): enrolled does not match the reason", input: input)
    }
    let expectedReason: AssignmentReason? =
        switch experiment.status {
        case .draft: .draft
        case .paused: .paused
        case .completed: .completed
        case .running:
            if let start = experiment.start, now < start { .notStarted }
            else if let end = experiment.end, now >= end { .ended }
            else { nil }
        }
    if let expectedReason, assignment.reason != expectedReason {
        fuzzFail("\(context): expected reason \(expectedReason)", input: input)
    }
    switch assignment.reason {
    case .assigned:
        guard experiment.variants[assignment.variantIndex].weightBasisPoints > 0 else {
            fuzzFail("\(context): assigned a variant of weight 0", input: input)
        }
    case .completed:
        guard assignment.variantIndex == experiment.winnerIndex else { fuzzFail("\(context): not the winner", input: input) }
    case .noConfig, .fallback:
        fuzzFail("\(context): the core never decides \(assignment.reason)", input: input)
    default:
        guard assignment.variantIndex == experiment.controlIndex else { fuzzFail("\(context): not the control", input: input) }
    }
}

/// No attributes, and attributes built to satisfy each rule where possible (one value per attribute name).
func attributeSets(for experiment: Experiment) -> [JSONObject] {
    var matching = JSONObject()
    var other = JSONObject()
    for rule in experiment.targeting.prefix(32) where matching[rule.attribute] == nil {
        let value: JSONValue
        let otherValue: JSONValue
        switch rule.operand {
        case .scalar(let scalar):
            value = rule.op == .eq ? scalar : .string("fuzz-other")
            otherValue = rule.op == .eq ? .bool(true) : scalar
        case .set(let values):
            value = rule.op == .in ? (values.first ?? .null) : .number(-1.5)
            otherValue = rule.op == .in ? .string("fuzz-other") : (values.first ?? .null)
        case .number(let bound):
            value = .number(rule.op == .lt ? bound - 1 : rule.op == .gt ? bound + 1 : bound)
            otherValue = .string("not a number")
        }
        matching.members.append((rule.attribute, value == .null ? .string("") : value))
        other.members.append((rule.attribute, otherValue == .null ? .bool(false) : otherValue))
    }
    return [JSONObject(), matching, other]
}

/// The raw `winner` of each completed experiment must be, byte for byte, the name of the variant it serves.
func checkWinners(_ document: ConfigDocument, input: [UInt8]) {
    guard case .object(let root)? = try? JSONParser.parse(input, maximumDepth: 64),
        case .array(let rawExperiments)? = root["experiments"]
    else { return }
    for raw in rawExperiments {
        guard case .string(let name)? = raw.objectValue?["name"], case .string(let winner)? = raw.objectValue?["winner"],
            let experiment = document.experiments.first(where: { $0.name.utf8.elementsEqual(name.utf8) }),
            let winnerIndex = experiment.winnerIndex
        else { continue }
        let served = experiment.variants[winnerIndex].name
        guard served.utf8.elementsEqual(winner.utf8) else {
            fuzzFail("experiment '\(name)' names winner '\(winner)' (UTF-8 \(printable(winner.utf8))) but serves variant '\(served)'", input: input)
        }
    }
}
