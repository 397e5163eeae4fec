extension ConfigDocument {
    /// The longest window an experiment may declare.
    public static let maximumWindowSeconds: Double = 366 * 86400

    /// Parses and validates a document, reporting every problem at once.
    /// - Throws: `ConfigValidationError` with one issue per problem (an `invalid_json` issue alone when the
    ///   bytes are not JSON).
    public static func validate(_ bytes: some Collection<UInt8>) throws(ConfigValidationError) -> ConfigDocument {
        try validate(try parseDocument(bytes))
    }

    /// A document's JSON, as every reader of a document parses it.
    /// - Throws: `ConfigValidationError` with one `invalid_json` issue when the bytes are not JSON.
    static func parseDocument(_ bytes: some Collection<UInt8>) throws(ConfigValidationError) -> JSONValue {
        do {
            return try JSONParser.parse(bytes, maximumDepth: 64)
        } catch {
            throw ConfigValidationError(issues: [
                ValidationIssue(path: "$", code: .invalidJSON, message: "not valid JSON: \(error)")
            ])
        }
    }

    /// Validates a parsed document, reporting every problem at once.
    /// - Throws: `ConfigValidationError`.
    public static func validate(_ root: JSONValue) throws(ConfigValidationError) -> ConfigDocument {
        var validator = DocumentValidator()
        let document = validator.document(root)
        guard validator.issues.isEmpty, let document else {
            throw ConfigValidationError(issues: validator.issues)
        }
        return document
    }
}

/// Walks a document, collecting issues instead of stopping at the first.
struct DocumentValidator {
    var issues: [ValidationIssue] = []

    private static let namePattern = "[A-Za-z0-9][A-Za-z0-9._-]{0,127}"

    mutating func report(_ path: String, _ code: ValidationIssue.Code, _ message: String) {
        issues.append(ValidationIssue(path: path, code: code, message: message))
    }

    // MARK: Generic field access

    /// The value as an object, reporting `wrong_type` and unknown fields (each with the allowed field it was
    /// likely meant to be); `allowed: nil` takes any key.
    mutating func object(_ value: JSONValue, at path: String, allowed: Set<String>?) -> JSONObject? {
        guard case .object(let object) = value else {
            report(path, .wrongType, "expected an object, found \(value.typeName)")
            return nil
        }
        guard let allowed else { return object }
        for key in object.keys where !allowed.contains(key) {
            let suggestion = NearNames.closest(to: key, among: allowed.sorted()).map { " (did you mean '\($0)'?)" }
            report("\(path).\(key)", .unknownField, "unknown field '\(key)'" + (suggestion ?? ""))
        }
        return object
    }

    mutating func field(_ object: JSONObject, _ key: String, at path: String, required: Bool) -> JSONValue? {
        guard let value = object[key] else {
            if required { report("\(path).\(key)", .missingField, "'\(key)' is required") }
            return nil
        }
        return value
    }

    mutating func string(_ object: JSONObject, _ key: String, at path: String, required: Bool = true) -> String? {
        guard let value = field(object, key, at: path, required: required) else { return nil }
        guard case .string(let text) = value else {
            report("\(path).\(key)", .wrongType, "'\(key)' must be a string, found \(value.typeName)")
            return nil
        }
        return text
    }

    mutating func integer(_ object: JSONObject, _ key: String, at path: String, required: Bool = true) -> Int? {
        guard let value = field(object, key, at: path, required: required) else { return nil }
        guard case .number = value else {
            report("\(path).\(key)", .wrongType, "'\(key)' must be an integer, found \(value.typeName)")
            return nil
        }
        guard let integer = value.integerValue else {
            report("\(path).\(key)", .wrongType, "'\(key)' must be an integer")
            return nil
        }
        return integer
    }

    mutating func bool(_ object: JSONObject, _ key: String, at path: String) -> Bool? {
        guard let value = field(object, key, at: path, required: false) else { return nil }
        guard case .bool(let flag) = value else {
            report("\(path).\(key)", .wrongType, "'\(key)' must be a boolean, found \(value.typeName)")
            return nil
        }
        return flag
    }

    mutating func array(_ object: JSONObject, _ key: String, at path: String, required: Bool = true) -> [JSONValue]? {
        guard let value = field(object, key, at: path, required: required) else { return nil }
        guard case .array(let elements) = value else {
            report("\(path).\(key)", .wrongType, "'\(key)' must be an array, found \(value.typeName)")
            return nil
        }
        return elements
    }

    /// A percentage 0...100 with at most two decimals as basis points, or nil when it is anything else.
    static func basisPoints(of value: JSONValue?) -> Int? {
        guard case .number(let percent)? = value, percent >= 0, percent <= 100 else { return nil }
        let basisPoints = (percent * 100).rounded()
        return abs(percent * 100 - basisPoints) < 1e-6 ? Int(basisPoints) : nil
    }

    /// A percentage 0...100 with at most two decimals, as basis points.
    mutating func basisPoints(_ object: JSONObject, _ key: String, at path: String, required: Bool) -> Int? {
        guard let value = field(object, key, at: path, required: required) else { return nil }
        guard case .number(let percent) = value else {
            report("\(path).\(key)", .wrongType, "'\(key)' must be a number, found \(value.typeName)")
            return nil
        }
        guard percent >= 0, percent <= 100 else {
            report("\(path).\(key)", .invalidValue, "'\(key)' must be between 0 and 100, found \(percent)")
            return nil
        }
        let basisPoints = (percent * 100).rounded()
        guard abs(percent * 100 - basisPoints) < 1e-6 else {
            report("\(path).\(key)", .invalidValue, "'\(key)' may have at most two decimals, found \(percent)")
            return nil
        }
        return Int(basisPoints)
    }

    mutating func name(_ object: JSONObject, _ key: String, at path: String) -> String? {
        guard let name = string(object, key, at: path) else { return nil }
        guard Self.isValidName(name) else {
            report("\(path).\(key)", .invalidValue, "'\(name)' is not a valid name (\(Self.namePattern))")
            return nil
        }
        return name
    }

    static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...128).contains(bytes.count) else { return false }
        func isAlphanumeric(_ byte: UInt8) -> Bool {
            (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
        }
        return isAlphanumeric(bytes[0])
            && bytes.dropFirst().allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    static func isValidVariableName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first else { return false }
        func isLetter(_ byte: UInt8) -> Bool { (65...90).contains(byte) || (97...122).contains(byte) || byte == 95 }
        return isLetter(first) && bytes.dropFirst().allSatisfy { isLetter($0) || (48...57).contains($0) }
    }

    // MARK: The document

    mutating func document(_ root: JSONValue) -> ConfigDocument? {
        guard let top = object(root, at: "$", allowed: ["schema_version", "prompts", "experiments"]) else {
            return nil
        }
        if let version = integer(top, "schema_version", at: "$"), version != 1 {
            report("$.schema_version", .unsupportedSchemaVersion, "schema_version \(version) is not supported (1 is)")
        }
        var prompts: [String: Prompt] = [:]
        if let promptsValue = field(top, "prompts", at: "$", required: true) {
            if case .object(let promptsObject) = promptsValue {
                for member in promptsObject.members {
                    let path = "$.prompts.\(member.key)"
                    guard Self.isValidName(member.key) else {
                        report(path, .invalidValue, "'\(member.key)' is not a valid prompt name (\(Self.namePattern))")
                        continue
                    }
                    if let prompt = prompt(named: member.key, member.value, at: path) { prompts[member.key] = prompt }
                }
            } else {
                report("$.prompts", .wrongType, "'prompts' must be an object, found \(promptsValue.typeName)")
            }
        }
        var experiments: [Experiment] = []
        if let elements = array(top, "experiments", at: "$") {
            var seen: [String: Int] = [:]
            for (index, element) in elements.enumerated() {
                let path = "$.experiments[\(index)]"
                let experiment = experiment(element, at: path, prompts: prompts)
                if let name = element.objectValue?["name"]?.stringValue {
                    if let first = seen[name] {
                        report("\(path).name", .duplicateName, "experiment '\(name)' is also defined at $.experiments[\(first)]")
                    } else {
                        seen[name] = index
                    }
                }
                if let experiment { experiments.append(experiment) }
            }
        }
        return issues.isEmpty ? ConfigDocument(prompts: prompts, experiments: experiments) : nil
    }

    mutating func prompt(named name: String, _ value: JSONValue, at path: String) -> Prompt? {
        guard let object = object(value, at: path, allowed: ["description", "versions", "rules"]) else { return nil }
        let description = string(object, "description", at: path, required: false)
        let promptRules = promptRuleList(object, at: path) ?? []
        guard let elements = array(object, "versions", at: path) else { return nil }
        if elements.isEmpty { report("\(path).versions", .invalidValue, "a prompt needs at least one version") }
        var versions: [PromptVersion] = []
        var seen: [Int: Int] = [:]
        for (index, element) in elements.enumerated() {
            let versionPath = "\(path).versions[\(index)]"
            guard let version = promptVersion(element, at: versionPath, promptRules: promptRules) else { continue }
            if let first = seen[version.number] {
                report("\(versionPath).version", .duplicateVersion, "version \(version.number) is also defined at \(path).versions[\(first)]")
                continue
            }
            seen[version.number] = index
            versions.append(version)
        }
        guard !versions.isEmpty else { return nil }
        return Prompt(name: name, description: description, versions: versions.sorted { $0.number < $1.number })
    }

    mutating func promptVersion(
        _ value: JSONValue, at path: String, promptRules: [(rule: PromptRule, path: String)]
    ) -> PromptVersion? {
        guard
            let object = object(
                value, at: path, allowed: ["version", "template", "messages", "variables", "description", "rules"])
        else {
            return nil
        }
        let number = integer(object, "version", at: path)
        if let number, number < 1 { report("\(path).version", .invalidValue, "version must be 1 or more, found \(number)") }
        let content = promptContent(object, at: path)
        let description = string(object, "description", at: path, required: false)
        var required: [String] = []
        var optional: [String] = []
        if let variablesValue = field(object, "variables", at: path, required: false),
            let variables = self.object(variablesValue, at: "\(path).variables", allowed: ["required", "optional"])
        {
            var seen: Set<String> = []
            for key in ["required", "optional"] {
                guard let names = array(variables, key, at: "\(path).variables", required: false) else { continue }
                for (index, nameValue) in names.enumerated() {
                    let namePath = "\(path).variables.\(key)[\(index)]"
                    guard case .string(let name) = nameValue else {
                        report(namePath, .wrongType, "a variable name must be a string, found \(nameValue.typeName)")
                        continue
                    }
                    guard Self.isValidVariableName(name) else {
                        report(namePath, .invalidValue, "'\(name)' is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)")
                        continue
                    }
                    guard seen.insert(name).inserted else {
                        report(namePath, .duplicateName, "variable '\(name)' is declared twice")
                        continue
                    }
                    if key == "required" { required.append(name) } else { optional.append(name) }
                }
            }
        }
        let rules = versionRules(object, at: path, inherited: promptRules)
        let rendering = promptRendering(content, declared: required + optional, requiredCount: required.count, rules: rules, at: path)
        guard let number, number >= 1, let content, let rules, let rendering else { return nil }
        return PromptVersion(
            number: number, template: content.template ?? "", messages: content.messages, requiredVariables: required,
            optionalVariables: optional, description: description, rules: rules, rendering: rendering)
    }

    // MARK: Experiments

    static let experimentFields: Set<String> = [
        "name", "description", "salt", "status", "start", "end", "exposure", "targeting", "variants", "winner", "mode",
        "guardrails", "metric_ranges",
    ]

    mutating func experiment(_ value: JSONValue, at path: String, prompts: [String: Prompt]) -> Experiment?
    {
        guard let object = object(value, at: path, allowed: Self.experimentFields) else { return nil }
        let name = name(object, "name", at: path)
        let description = string(object, "description", at: path, required: false)
        let salt = string(object, "salt", at: path)
        if let salt {
            if salt.isEmpty || salt.utf8.count > 256 {
                report("\(path).salt", .invalidValue, "salt must be 1 to 256 bytes long")
            } else if salt.utf8.contains(0) {
                report("\(path).salt", .invalidValue, "salt must not contain NUL")
            }
        }
        var status: Experiment.Status?
        if let statusText = string(object, "status", at: path) {
            status = Experiment.Status(rawValue: statusText)
            if status == nil {
                report("\(path).status", .invalidValue, "status must be one of draft, running, paused, completed; found '\(statusText)'")
            }
        }
        let start = timestamp(object, "start", at: path)
        let end = timestamp(object, "end", at: path)
        if let start, let end {
            if end <= start {
                report("\(path).end", .windowInverted, "the window ends (\(end.rfc3339)) before it starts (\(start.rfc3339))")
            } else if end.seconds(since: start) > ConfigDocument.maximumWindowSeconds {
                report("\(path).end", .windowTooLong, "the window lasts \(Int(end.seconds(since: start) / 86400)) days; at most 366 are allowed")
            }
        }
        let exposure = basisPoints(object, "exposure", at: path, required: false) ?? 10000
        var mode = Experiment.Mode.live
        if let modeText = string(object, "mode", at: path, required: false) {
            if let parsed = Experiment.Mode(rawValue: modeText) {
                mode = parsed
            } else {
                report("\(path).mode", .invalidValue, "mode must be live or shadow; found '\(modeText)'")
            }
        }
        let guardrails = guardrails(object, at: path)
        let metricRanges = metricRanges(object, at: path)
        let targeting = (array(object, "targeting", at: path, required: false) ?? []).enumerated().compactMap {
            rule($0.element, at: "\(path).targeting[\($0.offset)]")
        }
        let variants = variants(object, at: path, prompts: prompts)
        let controlIndex = variants?.firstIndex { $0.isControl }
        var winnerIndex: Int?
        let winner = string(object, "winner", at: path, required: false)
        if winner != nil, status != .completed, status != nil {
            report("\(path).winner", .unexpectedWinner, "only a completed experiment names a winner")
        } else if status == .completed {
            if let winner {
                winnerIndex = variants?.firstIndex { $0.name.hasSameUTF8(as: winner) }
                if variants != nil, winnerIndex == nil {
                    report("\(path).winner", .unknownWinner, "no variant is named '\(winner)'")
                }
            } else {
                report("\(path).winner", .missingWinner, "a completed experiment must name its winner")
            }
        }
        guard let name, let salt, let status, let variants, let controlIndex else { return nil }
        return Experiment(
            name: name, description: description, salt: salt, status: status, start: start, end: end,
            exposureBasisPoints: exposure, targeting: targeting, variants: variants, controlIndex: controlIndex,
            winnerIndex: winnerIndex, mode: mode, guardrails: guardrails, metricRanges: metricRanges)
    }

    /// The `metric_ranges` object of an experiment: custom metric name → `{"min": NUMBER, "max": NUMBER}`, each
    /// bound within `MetricRanges.widestCustom` and `min` below `max`.
    mutating func metricRanges(_ experiment: JSONObject, at experimentPath: String) -> MetricRanges {
        var ranges = MetricRanges()
        guard let value = experiment["metric_ranges"] else { return ranges }
        let path = experimentPath + ".metric_ranges"
        guard let object = object(value, at: path, allowed: nil) else { return ranges }
        let widest = MetricRanges.widestCustom
        for member in object.members {
            let entryPath = "\(path).\(member.key)"
            guard CustomMeasurement.isValidName(member.key) else {
                report(entryPath, .invalidValue, "a custom metric name is 1 to 64 of A-Z a-z 0-9 _ . -, found '\(member.key)'")
                continue
            }
            guard let bounds = self.object(member.value, at: entryPath, allowed: ["min", "max"]) else { continue }
            let minimum = number(bounds, "min", at: entryPath, in: widest, required: true)
            let maximum = number(bounds, "max", at: entryPath, in: widest, required: true)
            guard let minimum, let maximum else { continue }
            guard minimum < maximum else {
                report("\(entryPath).max", .invalidValue, "'max' must be above 'min' (\(Readable.number(minimum))), found \(Readable.number(maximum))")
                continue
            }
            ranges.custom[member.key] = minimum...maximum
        }
        return ranges
    }

    mutating func timestamp(_ object: JSONObject, _ key: String, at path: String) -> Timestamp? {
        guard let text = string(object, key, at: path, required: false) else { return nil }
        guard let timestamp = Timestamp(rfc3339: text) else {
            report("\(path).\(key)", .invalidTimestamp, "'\(text)' is not an RFC 3339 timestamp such as 2026-11-01T00:00:00Z")
            return nil
        }
        return timestamp
    }

    mutating func variants(_ object: JSONObject, at path: String, prompts: [String: Prompt]) -> [Variant]? {
        guard let elements = array(object, "variants", at: path) else { return nil }
        if elements.count < 2 {
            report("\(path).variants", .tooFewVariants, "an experiment needs at least 2 variants, found \(elements.count)")
        }
        var variants: [Variant] = []
        var seen: [String: Int] = [:]
        for (index, element) in elements.enumerated() {
            let variantPath = "\(path).variants[\(index)]"
            if let name = element.objectValue?["name"]?.stringValue {
                if let first = seen[name] {
                    report("\(variantPath).name", .duplicateName, "variant '\(name)' is also defined at \(path).variants[\(first)]")
                } else {
                    seen[name] = index
                }
            }
            if let variant = variant(element, at: variantPath, prompts: prompts) { variants.append(variant) }
        }
        // Checked on the raw elements, so that a problem in one variant does not hide these.
        let controls = elements.filter { $0.objectValue?["control"] == .bool(true) }.count
        if !elements.isEmpty, controls == 0 {
            report("\(path).variants", .missingControl, "exactly one variant must have \"control\": true; none has")
        } else if controls > 1 {
            report("\(path).variants", .multipleControls, "exactly one variant must have \"control\": true; \(controls) have")
        }
        // The sum is checked whenever every weight is readable, even if a variant has other problems.
        let weights = elements.map { Self.basisPoints(of: $0.objectValue?["weight"]) }
        if !elements.isEmpty, !weights.contains(nil) {
            let total = weights.reduce(0) { $0 + $1! }
            if total != 10000 {
                report("\(path).variants", .weightsSum, "the weights sum to \(Double(total) / 100), not 100")
            }
        }
        return variants.count == elements.count && elements.count >= 2 ? variants : nil
    }

    mutating func variant(_ value: JSONValue, at path: String, prompts: [String: Prompt]) -> Variant? {
        guard
            let object = object(
                value, at: path,
                allowed: ["name", "weight", "prompt", "prompt_version", "control", "params", "disabled"])
        else { return nil }
        let name = name(object, "name", at: path)
        let weight = basisPoints(object, "weight", at: path, required: true)
        let promptName = string(object, "prompt", at: path)
        let promptVersion = integer(object, "prompt_version", at: path)
        let isControl = bool(object, "control", at: path) ?? false
        var params = JSONObject()
        if let paramsValue = field(object, "params", at: path, required: false) {
            if case .object(let paramsObject) = paramsValue {
                params = paramsObject
            } else {
                report("\(path).params", .wrongType, "'params' must be an object, found \(paramsValue.typeName)")
            }
        }
        if let promptName {
            if let prompt = ConfigDocument.prompt(named: promptName, in: prompts) {
                if let promptVersion, prompt.version(promptVersion) == nil {
                    report("\(path).prompt_version", .unknownPromptVersion, "prompt '\(promptName)' has no version \(promptVersion) (it has \(prompt.versions.map { String($0.number) }.joined(separator: ", ")))")
                } else if let promptVersion, let version = prompt.version(promptVersion) {
                    checkModelRules(of: version, prompt: promptName, params: params, at: path)
                }
            } else {
                report("\(path).prompt", .unknownPrompt, "no prompt is named '\(promptName)'")
            }
        }
        var disabled: ConfigDisable?
        if let disabledValue = field(object, "disabled", at: path, required: false) {
            disabled = configDisable(disabledValue, at: "\(path).disabled")
            if isControl {
                report("\(path).disabled", .controlCannotBeDisabled, "the control cannot be disabled; pause the experiment instead")
            }
        }
        guard let name, let weight, let promptName, let promptVersion else { return nil }
        if object["disabled"] != nil, disabled == nil || isControl { return nil }
        return Variant(
            name: name, weightBasisPoints: weight, prompt: promptName, promptVersion: promptVersion,
            isControl: isControl, params: params, disabled: disabled)
    }

    static let configDisableFields: Set<String> = ["at", "by", "reason", "evidence"]

    /// A variant's `disabled`: `{"at": RFC 3339, "by": 1-256 bytes, "reason": at most 1000 bytes, "evidence": {..}}`.
    mutating func configDisable(_ value: JSONValue, at path: String) -> ConfigDisable? {
        guard let object = object(value, at: path, allowed: Self.configDisableFields) else { return nil }
        var at: Timestamp?
        if let text = string(object, "at", at: path) {
            at = Timestamp(rfc3339: text)
            if at == nil {
                report("\(path).at", .invalidTimestamp, "'\(text)' is not an RFC 3339 timestamp such as 2026-11-01T00:00:00Z")
            }
        }
        var by = string(object, "by", at: path)
        if let text = by, text.utf8.isEmpty || text.utf8.count > ConfigDisable.maximumByBytes {
            report("\(path).by", .invalidValue, "'by' must be 1 to \(ConfigDisable.maximumByBytes) bytes, found \(text.utf8.count)")
            by = nil
        }
        var reason = string(object, "reason", at: path)
        if let text = reason, text.utf8.count > ConfigDisable.maximumReasonBytes {
            report("\(path).reason", .invalidValue, "'reason' must be at most \(ConfigDisable.maximumReasonBytes) bytes, found \(text.utf8.count)")
            reason = nil
        }
        var evidence: JSONObject?
        if let evidenceValue = field(object, "evidence", at: path, required: false) {
            if case .object(let evidenceObject) = evidenceValue {
                evidence = evidenceObject
            } else {
                report("\(path).evidence", .wrongType, "'evidence' must be an object, found \(evidenceValue.typeName)")
                return nil
            }
        }
        guard let at, let by, let reason else { return nil }
        return ConfigDisable(at: at, by: by, reason: reason, evidence: evidence)
    }

    mutating func rule(_ value: JSONValue, at path: String) -> TargetingRule? {
        guard let object = object(value, at: path, allowed: ["attribute", "op", "value", "values"]) else { return nil }
        let attribute = string(object, "attribute", at: path)
        guard let opText = string(object, "op", at: path) else { return nil }
        guard let op = TargetingRule.Operator(rawValue: opText) else {
            let known = TargetingRule.Operator.allCases.map(\.rawValue).joined(separator: ", ")
            report("\(path).op", .invalidValue, "op must be one of \(known); found '\(opText)'")
            return nil
        }
        let operand: TargetingRule.Operand?
        switch op {
        case .in, .notIn:
            if object["value"] != nil { report("\(path).value", .invalidRule, "'\(opText)' takes 'values' (an array), not 'value'") }
            if let values = array(object, "values", at: path) {
                let nonScalar = values.firstIndex { !$0.isScalar }
                if let nonScalar {
                    report("\(path).values[\(nonScalar)]", .invalidRule, "values must be strings, numbers or booleans")
                    operand = nil
                } else {
                    operand = .set(values)
                }
            } else {
                operand = nil
            }
        case .eq, .ne, .lt, .lte, .gt, .gte:
            if object["values"] != nil { report("\(path).values", .invalidRule, "'\(opText)' takes 'value', not 'values'") }
            if let value = field(object, "value", at: path, required: true) {
                switch (op, value) {
                case (.eq, _) where value.isScalar, (.ne, _) where value.isScalar: operand = .scalar(value)
                case (.lt, .number(let number)), (.lte, .number(let number)), (.gt, .number(let number)),
                    (.gte, .number(let number)):
                    operand = .number(number)
                default:
                    let expected = op == .eq || op == .ne ? "a string, number or boolean" : "a number"
                    report("\(path).value", .invalidRule, "'\(opText)' compares with \(expected), found \(value.typeName)")
                    operand = nil
                }
            } else {
                operand = nil
            }
        }
        guard let attribute, let operand else { return nil }
        return TargetingRule(attribute: attribute, op: op, operand: operand)
    }
}
