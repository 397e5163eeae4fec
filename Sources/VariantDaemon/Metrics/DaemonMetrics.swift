import NIOCore
import Prometheus
import Synchronization
import VariantCore

/// The daemon's operational metrics (docs/operations.md, "Metrics endpoint"), in a swift-prometheus registry:
/// counted by the socket server, the config source, the Langfuse stage and the state writer, and rendered in the
/// Prometheus text format by `render()`, followed by the experiment statistics.
///
/// Counting is cheap on the request path: the series of every op's successes and its duration histogram are made
/// once, here, and found by the op's index; a failure's series is made on its first use and then found in a small
/// locked table. Every label value comes from a fixed set (ops, protocol and config error codes), never from
/// unit ids or free text.
public final class DaemonMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let store: ServingStateStore
    private let ledger: ExperimentLedger
    private let appendExperimentMetrics: @Sendable (inout ByteBuffer) -> Void
    /// The last body, kept so that the next scrape writes into the same memory once the last answer is sent (a
    /// full-detail body is megabytes: allocating it afresh cost every scrape its page faults).
    private let lastBody = Mutex<ByteBuffer?>(nil)
    private let now: @Sendable () -> Timestamp

    /// `variantd_requests_total{op,code="ok"}`, by `Request.Op.rawValue` (none for `unknown`, which never succeeds).
    private let succeeded: [Counter?]
    /// `variantd_request_duration_seconds{op}`, by `Request.Op.rawValue`.
    private let durations: [DurationHistogram]
    /// `variantd_requests_total{op,code}` of failed requests, made on first use.
    private let failed = Mutex<[RequestOutcome: Counter]>([:])
    private let openConnections: Gauge
    private let refusedConnections: Counter
    private let polls: Counter
    private let pollFailures = Mutex<[String: Counter]>([:])
    private let langfuseFailures = Mutex<[String: Counter]>([:])
    private let stateWriteFailures: Counter
    private let refusedRecords = Mutex<[ProtocolError.Code: Counter]>([:])
    private let disabledTreatments: Gauge
    /// Made at the first success, so that a daemon that never had one shows no age rather than zero.
    private let lastSuccessAge = Mutex<Gauge?>(nil)
    /// The `variantd_config_info` series of the config in use (its version and source), replaced when it changes.
    private let configInfo = Mutex<(labels: [String], gauge: Gauge)?>(nil)

    static let requestDurationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100), .seconds(1),
    ]

    /// - Parameters:
    ///   - version: the daemon's version, for `variantd_build_info`.
    ///   - appendExperimentMetrics: appends the experiment statistics to the body after the operational metrics.
    ///   - now: the wall clock, for `variantd_config_last_success_age_seconds`.
    public init(
        version: String, store: ServingStateStore, ledger: ExperimentLedger,
        appendExperimentMetrics: @escaping @Sendable (inout ByteBuffer) -> Void = { _ in },
        now: @escaping @Sendable () -> Timestamp = SystemClock.now
    ) {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        self.store = store
        self.ledger = ledger
        self.appendExperimentMetrics = appendExperimentMetrics
        self.now = now
        succeeded = Request.Op.allCases.map { op in
            op == .unknown ? nil : registry.makeCounter(descriptor: Self.requests, labels: [("op", op.name), ("code", "ok")])
        }
        durations = Request.Op.allCases.map { op in
            registry.makeDurationHistogram(
                descriptor: Self.named(
                    "request_duration", unit: "seconds",
                    "Time from reading a request line to its answer being ready to send, by op."),
                labels: [("op", op.name)], buckets: Self.requestDurationBuckets)
        }
        openConnections = registry.makeGauge(
            descriptor: Self.named("connections_open", unit: "", "Connections to the Unix socket served now."))
        refusedConnections = registry.makeCounter(
            descriptor: Self.named(
                "connections_refused", unit: "total",
                "Connections refused with too_many_connections because --max-connections were open."))
        polls = registry.makeCounter(
            descriptor: Self.named("config_polls", unit: "total", "Polls of the config source (each fetch attempt)."))
        stateWriteFailures = registry.makeCounter(
            descriptor: Self.named(
                "state_write_failures", unit: "total", "Writes of the state file that failed (each is retried)."))
        disabledTreatments = registry.makeGauge(
            descriptor: Self.named(
                "treatments_disabled", unit: "", "Treatments disabled now, by an operator or a guardrail."))
        registry.makeGauge(
            descriptor: Self.named("build", unit: "info", "The daemon's version; always 1."),
            labels: [("version", version)]
        ).set(to: 1)
    }

    /// `variantd_NAME_UNIT` (the unit may be empty).
    private static func named(_ name: String, unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "variantd", metricName: name, unitName: unit, helpText: help)
    }

    private static var requests: MetricNameDescriptor {
        named("requests", unit: "total", "Request lines answered, by op and outcome code (ok, or the protocol error code).")
    }

    // MARK: Requests and connections (the socket server)

    /// Counts an answered request line and how long answering it took.
    @inline(__always)
    public func requestAnswered(_ outcome: RequestOutcome, duration: Duration) {
        durations[Int(outcome.op.rawValue)].record(duration)
        count(outcome)
    }

    /// Counts an answered request line.
    public func count(_ outcome: RequestOutcome) {
        guard outcome.error != nil else {
            succeeded[Int(outcome.op.rawValue)]?.increment()
            return
        }
        counter(in: failed, key: outcome) {
            registry.makeCounter(descriptor: Self.requests, labels: [("op", outcome.op.name), ("code", outcome.code)])
        }.increment()
    }

    public func connectionOpened() { openConnections.increment() }
    public func connectionClosed() { openConnections.decrement() }
    public func connectionRefused() { refusedConnections.increment() }

    /// Counts records that were not recorded (`RequestContext.recordsRefused`).
    public func recordsRefused(_ code: ProtocolError.Code, count: Int) {
        counter(in: refusedRecords, key: code) {
            registry.makeCounter(
                descriptor: Self.named(
                    "records_refused", unit: "total",
                    "Records not recorded, by the protocol error code they were refused with."),
                labels: [("code", code.rawValue)])
        }.increment(by: Int64(count))
    }

    // MARK: Config source, Langfuse, state

    /// Hooks that count the config source's polls, their failures and the Langfuse resolution failures.
    public var configHooks: ConfigSourceHooks {
        ConfigSourceHooks(
            polled: { [self] failure in self.configPolled(failure: failure) },
            promptResolutionFailed: { [self] failure in self.langfuseResolutionFailed(code: failure.code) })
    }

    func configPolled(failure: ConfigLoadFailure?) {
        polls.increment()
        guard let failure else { return }
        counter(in: pollFailures, key: failure.code) {
            registry.makeCounter(
                descriptor: Self.named(
                    "config_poll_failures", unit: "total",
                    "Polls of the config source that failed, by code (a failed fetch or a rejected document)."),
                labels: [("code", failure.code)])
        }.increment()
    }

    func langfuseResolutionFailed(code: String) {
        counter(in: langfuseFailures, key: code) {
            registry.makeCounter(
                descriptor: Self.named(
                    "langfuse_resolution_failures", unit: "total",
                    "Langfuse prompt references whose resolution failed, by code (a copy may still serve)."),
                labels: [("code", code)])
        }.increment()
    }

    public func stateWriteFailed() { stateWriteFailures.increment() }

    private func counter<Key: Hashable & Sendable>(
        in table: borrowing Mutex<[Key: Counter]>, key: Key, make: () -> Counter
    ) -> Counter {
        table.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = make()
            counters[key] = counter
            return counter
        }
    }

    // MARK: Rendering

    /// The exposition body: the operational metrics (those computed now updated first), then the experiment
    /// statistics. Called off the socket server's event loops (the metrics server renders in a task).
    public func render() -> ByteBuffer {
        let snapshot = store.current
        disabledTreatments.set(to: Double(ledger.disabled.count))
        if let last = snapshot.lastSuccessAt ?? snapshot.config?.loadedAt {
            let age = max(0, now().seconds(since: last))
            lastSuccessAge.withLock { gauge in
                if gauge == nil {
                    gauge = registry.makeGauge(
                        descriptor: Self.named(
                            "config_last_success_age", unit: "seconds",
                            "Seconds since the config source last answered or a config was last loaded."))
                }
                gauge?.set(to: age)
            }
        }
        updateConfigInfo(snapshot.config.map { [$0.version, snapshot.source] })
        var operational: [UInt8] = []
        operational.reserveCapacity(16 << 10)
        registry.emit(into: &operational)
        // Still being sent (a concurrent scrape), the kept buffer is copied on write by `clear()`, not overwritten.
        var body = lastBody.withLock { kept in
            defer { kept = nil }
            return kept
        } ?? ByteBufferAllocator().buffer(capacity: operational.count + 4096)
        body.clear()
        body.writeBytes(operational)
        appendExperimentMetrics(&body)
        lastBody.withLock { $0 = body }
        return body
    }

    /// Keeps exactly one `variantd_config_info` series, for the config in use (none without one).
    private func updateConfigInfo(_ labels: [String]?) {
        configInfo.withLock { current in
            guard current?.labels != labels else { return }
            if let current { registry.unregisterGauge(current.gauge) }
            current = labels.map { labels in
                let gauge = registry.makeGauge(
                    descriptor: Self.named("config", unit: "info", "The config in use: its version and source; always 1."),
                    labels: [("config_version", labels[0]), ("source", labels[1])])
                gauge.set(to: 1)
                return (labels: labels, gauge: gauge)
            }
        }
    }
}
