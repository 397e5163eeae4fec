/// What an app measured after one LLM call, each value of its metric's type and finite; `MetricRanges` then
/// checks that each is plausible, so no record can poison an aggregate (PROTOCOL.md, `record`).
public struct Measurements: Sendable, Equatable {
    /// Wall-clock latency of the call in milliseconds.
    public var latencyMilliseconds: Double?
    /// Whether the call failed.
    public var error: Bool?
    /// Success or conversion: `true`/`false`, or a score from 0 to 1.
    public var success: Double?
    /// Cost of the call in US dollars.
    public var costUSD: Double?
    /// Tokens used, a whole number.
    public var tokens: Double?
    /// Named numbers the app defines (`custom` in the request), in request order.
    public var custom: [CustomMeasurement]

    public init(
        latencyMilliseconds: Double? = nil, error: Bool? = nil, success: Double? = nil, costUSD: Double? = nil,
        tokens: Double? = nil, custom: [CustomMeasurement] = []
    ) {
        self.latencyMilliseconds = latencyMilliseconds
        self.error = error
        self.success = success
        self.costUSD = costUSD
        self.tokens = tokens
        self.custom = custom
    }

    public var isEmpty: Bool {
        latencyMilliseconds == nil && error == nil && success == nil && costUSD == nil && tokens == nil
            && custom.isEmpty
    }

    /// The most custom metrics in one record.
    public static let maximumCustomPerRecord = 32
    /// The longest custom metric name, in bytes.
    public static let maximumCustomNameBytes = 64

    static let fieldNames = ["latency_ms", "error", "success", "cost_usd", "tokens", "custom"]

    /// Reads the `metrics` object of a record and checks each value's type; whether a value is plausible is
    /// `MetricRanges`' to say, once the experiment (which may set ranges of its own) is known.
    /// - Throws: `unknown_metric` for a name not listed in PROTOCOL.md, `invalid_metric` for a value of the wrong
    ///   type (not a number, infinite, fractional tokens, success outside 0...1), `missing_field` for an empty
    ///   object.
    public static func parse(_ object: JSONObject) throws(ProtocolError) -> Measurements {
        var measurements = Measurements()
        for member in object.members {
            switch member.key.utf8.allSatisfy({ $0 < 0x80 }) ? member.key : "" {
            case "latency_ms":
                measurements.latencyMilliseconds = try finiteNumber(member.value, "latency_ms")
            case "error":
                guard case .bool(let failed) = member.value else {
                    throw ProtocolError(.invalidMetric, "'error' must be a boolean, found \(member.value.typeName)")
                }
                measurements.error = failed
            case "success":
                switch member.value {
                case .bool(let succeeded): measurements.success = succeeded ? 1 : 0
                case .number(let score) where score.isFinite && score >= 0 && score <= 1: measurements.success = score
                default:
                    throw ProtocolError(.invalidMetric, "'success' must be a boolean or a number from 0 to 1, found \(describe(member.value))")
                }
            case "cost_usd":
                measurements.costUSD = try finiteNumber(member.value, "cost_usd")
            case "tokens":
                guard case .number(let count) = member.value, count.isFinite, count == count.rounded() else {
                    throw ProtocolError(.invalidMetric, "'tokens' must be a whole number, found \(describe(member.value))")
                }
                measurements.tokens = count
            case "custom":
                measurements.custom = try parseCustom(member.value)
            default:
                throw ProtocolError(.unknownMetric, "unknown metric '\(member.key)' (known: latency_ms, error, success, cost_usd, tokens, custom)")
            }
        }
        guard !measurements.isEmpty else {
            throw ProtocolError(.missingField, "'metrics' must hold at least one measurement")
        }
        return measurements
    }

    private static func parseCustom(_ value: JSONValue) throws(ProtocolError) -> [CustomMeasurement] {
        guard case .object(let object) = value else {
            throw ProtocolError(.invalidMetric, "'custom' must be an object of named numbers, found \(value.typeName)")
        }
        guard object.count <= maximumCustomPerRecord else {
            throw ProtocolError(.tooManyMetrics, "'custom' holds \(object.count) metrics, more than the \(maximumCustomPerRecord) allowed in one record")
        }
        var custom: [CustomMeasurement] = []
        for member in object.members {
            guard CustomMeasurement.isValidName(member.key) else {
                throw ProtocolError(.invalidMetric, "custom metric name '\(member.key)' must be 1 to \(maximumCustomNameBytes) of A-Z a-z 0-9 _ . -")
            }
            guard !custom.contains(where: { $0.name == member.key }) else {
                throw ProtocolError(.invalidMetric, "custom metric '\(member.key)' appears twice")
            }
            custom.append(CustomMeasurement(name: member.key, value: try finiteNumber(member.value, "custom." + member.key)))
        }
        return custom
    }

    private static func finiteNumber(_ value: JSONValue, _ name: String) throws(ProtocolError) -> Double {
        guard case .number(let number) = value, number.isFinite else {
            throw ProtocolError(.invalidMetric, "'\(name)' must be a finite number, found \(describe(value))")
        }
        return number
    }

    private static func describe(_ value: JSONValue) -> String {
        if case .number(let number) = value { return "\(number)" }
        return value.typeName
    }
}

/// One app-defined metric of a record.
public struct CustomMeasurement: Sendable, Equatable {
    public var name: String
    public var value: Double

    public init(name: String, value: Double) {
        self.name = name
        self.value = value
    }

    /// 1 to 64 ASCII letters, digits, `_`, `.` or `-`: safe as a log field, a metric label and a JSON key.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = name.utf8
        return !bytes.isEmpty && bytes.count <= Measurements.maximumCustomNameBytes
            && bytes.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
            }
    }
}
