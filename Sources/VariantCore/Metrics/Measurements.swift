/// What an app measured after one LLM call, validated: every value is finite and in range, so no record can
/// poison an aggregate (PROTOCOL.md, `record`).
public struct Measurements: Sendable, Equatable {
    /// Wall-clock latency of the call in milliseconds, 0 or more.
    public var latencyMilliseconds: Double?
    /// Whether the call failed.
    public var error: Bool?
    /// Success or conversion: `true`/`false`, or a score from 0 to 1.
    public var success: Double?
    /// Cost of the call in US dollars, 0 or more.
    public var costUSD: Double?
    /// Tokens used, a whole number, 0 or more.
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

    /// The largest latency accepted: one day. A larger value is a unit mistake (seconds sent as milliseconds
    /// would not reach it; microseconds would).
    public static let maximumLatencyMilliseconds = 86_400_000.0
    /// The most custom metrics in one record.
    public static let maximumCustomPerRecord = 32
    /// The longest custom metric name, in bytes.
    public static let maximumCustomNameBytes = 64

    static let fieldNames = ["latency_ms", "error", "success", "cost_usd", "tokens", "custom"]

    /// Reads and checks the `metrics` object of a record.
    /// - Throws: `unknown_metric` for a name not listed in PROTOCOL.md, `invalid_metric` for a value of the wrong
    ///   type or out of range (negative, infinite, fractional tokens, success outside 0...1), `missing_field` for
    ///   an empty object.
    public static func parse(_ object: JSONObject) throws(ProtocolError) -> Measurements {
        var measurements = Measurements()
        for member in object.members {
            switch member.key.utf8.allSatisfy({ $0 < 0x80 }) ? member.key : "" {
            case "latency_ms":
                let value = try finiteNumber(member.value, "latency_ms")
                guard value >= 0, value <= maximumLatencyMilliseconds else {
                    throw ProtocolError(.invalidMetric, "'latency_ms' must be from 0 to \(Int(maximumLatencyMilliseconds)), found \(value)")
                }
                measurements.latencyMilliseconds = value
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
                let value = try finiteNumber(member.value, "cost_usd")
                guard value >= 0 else { throw ProtocolError(.invalidMetric, "'cost_usd' must be 0 or more, found \(value)") }
                measurements.costUSD = value
            case "tokens":
                guard let count = member.value.integerValue, count >= 0 else {
                    throw ProtocolError(.invalidMetric, "'tokens' must be a whole number, 0 or more, found \(describe(member.value))")
                }
                measurements.tokens = Double(count)
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
