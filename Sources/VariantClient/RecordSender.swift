import Dispatch
import Foundation
import Synchronization
import VariantCore

extension VariantClient {
    /// Buffers one record for the background sender and returns at once; never throws.
    ///
    /// Returns false when the record was not buffered: the buffer is full or the client closed (both counted in
    /// `counters.dropped`), or `assignment` is a fallback or `no_config` answer (nothing the daemon decided).
    @discardableResult
    public func record(_ assignment: Assignment, _ measurements: Measurements, shadow: Bool = false) -> Bool {
        guard assignment.isDaemonsDecision, let variant = assignment.variant else {
            return false
        }
        return buffer(experiment: assignment.experiment, shadow: shadow, measurements) { writer in
            writer.raw(",\"variant\":")
            writer.string(variant)
            // The unit only groups the record for the analysis by unit; the variant is taken as given.
            if let unit = assignment.unit {
                writer.raw(",\"unit\":")
                writer.string(unit)
            }
        }
    }

    /// Buffers one record for a named variant (as `assign` answered it).
    @discardableResult
    public func record(experiment: String, variant: String, _ measurements: Measurements, shadow: Bool = false) -> Bool {
        buffer(experiment: experiment, shadow: shadow, measurements) { writer in
            writer.raw(",\"variant\":")
            writer.string(variant)
        }
    }

    /// Buffers one record for a unit, with the attributes its `assign` had: the daemon recomputes the unit's
    /// variant, so a caller that kept only the unit id can still record (PROTOCOL.md, `record`). A unit the
    /// experiment did not enroll is refused by the daemon with `not_enrolled` (counted in `counters.rejected`).
    @discardableResult
    public func record(
        experiment: String, unit: String, attributes: JSONObject = JSONObject(), _ measurements: Measurements,
        shadow: Bool = false
    ) -> Bool {
        buffer(experiment: experiment, shadow: shadow, measurements) { writer in
            writer.raw(",\"unit\":")
            writer.string(unit)
            if !attributes.isEmpty {
                writer.raw(",\"attributes\":")
                writer.value(.object(attributes))
            }
        }
    }

    /// Writes one record object (the experiment, then what `target` writes, then the metrics) into the buffer.
    private func buffer(
        experiment: String, shadow: Bool, _ measurements: Measurements, target: (inout JSONWriter) -> Void
    ) -> Bool {
        var writer = JSONWriter()
        writer.raw("{\"experiment\":")
        writer.string(experiment)
        target(&writer)
        if shadow { writer.raw(",\"shadow\":true") }
        writer.raw(",\"metrics\":")
        writer.value(.object(measurements.json))
        writer.raw("}")
        return shared.append(writer.bytes, capacity: configuration.recordBufferCapacity)
    }

    /// Records buffered or being sent.
    public var pendingRecords: Int { shared.pending }

    /// Waits up to `timeout` seconds until every buffered record was sent or dropped; true if so.
    @discardableResult
    public func flush(timeout: Double = 1) -> Bool {
        shared.wake()
        let deadline = monotonicSeconds() + timeout
        while shared.pending > 0 {
            if monotonicSeconds() >= deadline { return false }
            usleep(1_000)
        }
        return true
    }

    /// Sends what is buffered (waiting up to `timeout`), stops the sender and closes the connections.
    public func close(timeout: Double = 1) {
        flush(timeout: timeout)
        shared.close()
    }
}

extension Measurements {
    /// The `metrics` object of a record (PROTOCOL.md, `record`).
    var json: JSONObject {
        var members: [(key: String, value: JSONValue)] = []
        if let latencyMilliseconds { members.append(("latency_ms", .number(latencyMilliseconds))) }
        if let error { members.append(("error", .bool(error))) }
        if let success { members.append(("success", .number(success))) }
        if let costUSD { members.append(("cost_usd", .number(costUSD))) }
        if let tokens { members.append(("tokens", .number(tokens))) }
        if !custom.isEmpty {
            members.append(("custom", .object(JSONObject(custom.map { (key: $0.name, value: .number($0.value)) }))))
        }
        return JSONObject(members)
    }
}

/// The record buffer and the counters, shared by the client and its sender thread; a `Mutex` guards both.
final class SharedRecordState: Sendable {
    private struct Buffer {
        var records: [[UInt8]] = []
        var sending = 0
        var closed = false
        var counters = VariantClient.Counters()
    }

    private let buffer = Mutex(Buffer())
    /// Signalled to send at once (flush, close) instead of at the next interval.
    let wakeUp = DispatchSemaphore(value: 0)

    func append(_ record: [UInt8], capacity: Int) -> Bool {
        buffer.withLock { buffer in
            guard !buffer.closed, buffer.records.count < capacity else {
                buffer.counters.dropped += 1
                return false
            }
            buffer.records.append(record)
            return true
        }
    }

    /// Takes everything buffered, marking it as being sent; nil once closed and empty.
    func take() -> [[UInt8]]? {
        buffer.withLock { buffer in
            if buffer.closed, buffer.records.isEmpty { return nil }
            let taken = buffer.records
            buffer.records.removeAll(keepingCapacity: true)
            buffer.sending = taken.count
            return taken
        }
    }

    func finishSending(sent: Int, dropped: Int, rejected: Int) {
        buffer.withLock { buffer in
            buffer.sending = 0
            buffer.counters.sent += sent
            buffer.counters.dropped += dropped
            buffer.counters.rejected += rejected
        }
    }

    func count(_ change: (inout VariantClient.Counters) -> Void) {
        buffer.withLock { change(&$0.counters) }
    }

    var counters: VariantClient.Counters { buffer.withLock { $0.counters } }
    var pending: Int { buffer.withLock { $0.records.count + $0.sending } }
    var isClosed: Bool { buffer.withLock { $0.closed } }

    func wake() { wakeUp.signal() }

    func close() {
        let wasOpen = buffer.withLock { buffer in
            defer { buffer.closed = true }
            return !buffer.closed
        }
        if wasOpen { wakeUp.signal() }
    }
}

/// The background thread that sends buffered records as `batch` lines with `"ack":false` on its own connection,
/// and counts the entries the daemon reports as rejected.
enum RecordSender {
    static func start(configuration: VariantClient.Configuration, shared: SharedRecordState) {
        let thread = Thread { run(configuration: configuration, shared: shared) }
        thread.name = "variantd-records"
        thread.start()
    }

    private static func run(configuration: VariantClient.Configuration, shared: SharedRecordState) {
        var connection: VariantConnection?
        var downUntil = 0.0
        var batchNumber = 0
        while true {
            if shared.pending == 0, !shared.isClosed {
                _ = shared.wakeUp.wait(timeout: .now() + configuration.flushInterval)
            }
            guard let taken = shared.take() else { break }
            if taken.isEmpty {
                // Idle: collect the rejections of batches sent earlier.
                var rejected = 0
                if let open = connection {
                    let drained = drainRejections(open)
                    rejected = drained.rejected
                    if !drained.open { connection = nil }  // reconnect before the next batch instead of losing it
                }
                shared.finishSending(sent: 0, dropped: 0, rejected: rejected)
                continue
            }
            var sent = 0
            var rejected = 0
            do {
                guard monotonicSeconds() >= downUntil else {
                    throw VariantConnection.Failure(kind: .refused, description: "down")
                }
                if connection == nil {
                    connection = try VariantConnection(socketPath: configuration.socketPath, timeoutSeconds: 0.5)
                }
                guard let open = connection else { break }
                open.setTimeout(seconds: 1)
                for (line, count) in batchLines(taken, maximumBytes: configuration.maximumLineBytes) {
                    batchNumber += 1
                    try open.send("{\"id\":\"records-\(batchNumber)\",\"op\":\"batch\",\"ack\":false,\"records\":[\(line)]}")
                    sent += count
                }
                let drained = drainRejections(open)
                rejected = drained.rejected
                if !drained.open { connection = nil }
            } catch {
                connection = nil
                downUntil = monotonicSeconds() + configuration.retryAfter
            }
            shared.finishSending(sent: sent, dropped: taken.count - sent, rejected: rejected)
        }
        if let connection {
            connection.setTimeout(seconds: 0.05)
            let drained = drainRejections(connection, untilQuiet: true)
            shared.finishSending(sent: 0, dropped: 0, rejected: drained.rejected)
        }
    }

    /// The records joined with commas, in lines of at most `maximumBytes` and 1000 records.
    private static func batchLines(_ records: [[UInt8]], maximumBytes: Int) -> [(String, Int)] {
        var lines: [(String, Int)] = []
        var current: [UInt8] = []
        var count = 0
        for record in records {
            if count > 0, current.count + record.count + 100 > maximumBytes || count == 1000 {
                lines.append((String(decoding: current, as: UTF8.self), count))
                current.removeAll(keepingCapacity: true)
                count = 0
            }
            if count > 0 { current.append(UInt8(ascii: ",")) }
            current.append(contentsOf: record)
            count += 1
        }
        if count > 0 { lines.append((String(decoding: current, as: UTF8.self), count)) }
        return lines
    }

    /// Reads the answers that arrived (only batches with a rejected entry are answered) and counts the rejected
    /// entries; waits no longer than the connection's timeout for the first one.
    private static func drainRejections(_ connection: VariantConnection, untilQuiet: Bool = false) -> (rejected: Int, open: Bool) {
        var rejected = 0
        if !untilQuiet { connection.setTimeout(seconds: 0.000_1) }
        while true {
            let line: String
            do {
                line = try connection.receiveLine()
            } catch {
                return (rejected, error.kind == .timedOut)  // nothing more for now, or the daemon went away
            }
            if case .object(let answer)? = try? JSONParser.parse(Array(line.utf8)) {
                rejected += answer["rejected"]?.arrayValue?.count ?? 0
            }
        }
    }
}
