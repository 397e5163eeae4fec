import Foundation
import Synchronization
import VariantCore

/// The Swift shim for async code: `VariantClient`'s request path as `async` calls that never throw, with the same
/// fallback and deadline rules, over one connection that carries every task's requests at once (answers matched
/// by id), so a waiting call holds no thread.
///
/// - `assign`, `prompt`, `template` and both `render`s return what `VariantClient`'s do for the same answer or the
///   same failure: the fallback's control with `error` `unreachable`, `timeout` (no answer within
///   `configuration.timeout`, connecting included), `closed`, `invalid_answer` or the daemon's code; after
///   `unreachable`, `timeout` or `closed`, calls fall back at once for `retryAfter`.
/// - A call whose task is cancelled returns at once with the fallback and `error == "cancelled"`; its late answer
///   is dropped and the connection stays in use.
/// - A connection the daemon closed (a restart) fails the calls waiting on it with `closed`; a call on a kept
///   connection that closed is tried once more on a new one, as `VariantClient` does.
/// - `record` appends to the buffer `blocking` sends from (never blocks); operator calls are `blocking`'s.
public final class AsyncVariantClient: Sendable {
    private struct WireState {
        var connection: PipelinedConnection?
        var nextID = 1
        var downUntil = 0.0
    }

    /// The blocking client sharing this one's configuration, fallback, counters, template cache and record buffer:
    /// for `record`, `flush` and the operator calls (`events`, `stats`, `disable`, `enable`, `request`).
    public let blocking: VariantClient
    private let wire = Mutex(WireState())

    public init(configuration: VariantClient.Configuration = .init(), fallback: Fallback = Fallback()) {
        blocking = VariantClient(configuration: configuration, fallback: fallback)
    }

    public convenience init(socketPath: String, timeout: Double = 0.005, fallback: Fallback = Fallback()) {
        var configuration = VariantClient.Configuration(socketPath: socketPath)
        configuration.timeout = timeout
        self.init(configuration: configuration, fallback: fallback)
    }

    deinit {
        wire.withLock { $0.connection?.close() }
    }

    public var configuration: VariantClient.Configuration { blocking.configuration }
    public var fallback: Fallback { blocking.fallback }
    public var counters: VariantClient.Counters { blocking.counters }

    /// The variant `unit` gets in `experiment`; the fallback's control when the daemon cannot say.
    public func assign(
        _ experiment: String, unit: String, attributes: JSONObject = JSONObject()
    ) async -> VariantClient.Assignment {
        let answer = await ask(VariantClient.assignFields(experiment, unit: unit, attributes: attributes))
        return blocking.assigned(experiment, unit: unit, answer)
    }

    /// Many assignments at once over the one connection, pipelined, in request order (Python: `assign_many`); each
    /// falls back on its own if the daemon cannot answer it.
    public func assignMany(
        _ requests: [(experiment: String, unit: String, attributes: JSONObject)]
    ) async -> [VariantClient.Assignment] {
        await withTaskGroup(of: (Int, VariantClient.Assignment).self) { group in
            for (index, request) in requests.enumerated() {
                group.addTask { (index, await self.assign(request.experiment, unit: request.unit, attributes: request.attributes)) }
            }
            var answers = [VariantClient.Assignment?](repeating: nil, count: requests.count)
            for await (index, assignment) in group { answers[index] = assignment }
            return answers.map { $0! }
        }
    }

    /// Like `assign`, with the prompt version's `template` and `variables` (templates cached per config version).
    public func prompt(
        _ experiment: String, unit: String, attributes: JSONObject = JSONObject()
    ) async -> VariantClient.Assignment {
        let answer = await assign(experiment, unit: unit, attributes: attributes)
        guard let wanted = blocking.templateWanted(for: answer) else { return answer }
        if let known = blocking.knownTemplate(wanted) { return blocking.prompted(answer, wanted, known: known) }
        return blocking.prompted(answer, wanted, await ask(wanted.fields))
    }

    /// A prompt version's template (the latest without `version`) from the daemon, else from the fallback.
    public func template(_ prompt: String, version: Int? = nil) async -> Template? {
        blocking.template(prompt, version: version, await ask(VariantClient.templateFields(prompt, version: version)))
    }

    /// The prompt version `unit` gets in `experiment`, rendered by the daemon (see `VariantClient.render`).
    public func render(
        _ experiment: String, unit: String, variables: JSONObject = JSONObject(), attributes: JSONObject = JSONObject()
    ) async -> VariantClient.Rendering {
        let fields = VariantClient.renderFields(experiment, unit: unit, variables: variables, attributes: attributes)
        return blocking.rendered(experiment, unit: unit, variables: variables, await ask(fields))
    }

    /// A prompt version rendered by the daemon without an experiment (see `VariantClient.renderPrompt`).
    public func renderPrompt(
        _ prompt: String, variables: JSONObject = JSONObject(), version: Int? = nil
    ) async -> VariantClient.Rendering {
        let fields = VariantClient.renderFields(prompt: prompt, version: version, variables: variables)
        return blocking.rendered(prompt: prompt, version: version, variables: variables, await ask(fields))
    }

    /// Buffers one record for the background sender and returns at once (`VariantClient.record(_:_:shadow:)`).
    @discardableResult
    public func record(
        _ assignment: VariantClient.Assignment, _ measurements: Measurements, shadow: Bool = false
    ) -> Bool {
        blocking.record(assignment, measurements, shadow: shadow)
    }

    /// Ends the connection (calls waiting on it fall back with `closed`), sends the buffered records (waiting up to
    /// `timeout` seconds, on a thread of its own rather than the caller's) and stops the record sender.
    public func close(timeout: Double = 1) async {
        wire.withLock { state in
            state.connection?.close()
            state.connection = nil
        }
        let blocking = blocking
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            Thread {
                blocking.close(timeout: timeout)
                continuation.resume()
            }.start()
        }
    }

    /// One request on the shared connection within `configuration.timeout`, respecting the backoff.
    private func ask(_ fields: [(String, JSONValue)]) async -> Result<JSONObject, VariantClient.Failure> {
        let configuration = blocking.configuration
        let deadline = monotonicSeconds() + configuration.timeout
        for attempt in 0..<2 {
            let taken = wire.withLock { state -> Result<(PipelinedConnection, Int, fresh: Bool), VariantClient.Failure> in
                let now = monotonicSeconds()
                guard now >= state.downUntil else {
                    return .failure(.init(code: "unreachable", message: "the daemon was unreachable moments ago"))
                }
                let id = state.nextID
                state.nextID += 1
                if let open = state.connection, open.isOpen { return .success((open, id, false)) }
                state.connection = nil
                guard deadline > now else { return .failure(.init(code: "timeout", message: "no time left to connect")) }
                do throws(VariantConnection.Failure) {
                    let connection = try PipelinedConnection(
                        socketPath: configuration.socketPath, timeoutSeconds: deadline - now)
                    state.connection = connection
                    return .success((connection, id, true))
                } catch {
                    state.downUntil = now + configuration.retryAfter
                    return .failure(.init(code: "unreachable", message: error.description))
                }
            }
            let connection: PipelinedConnection
            let id: Int
            let fresh: Bool
            switch taken {
            case .success(let found): (connection, id, fresh) = found
            case .failure(let failure): return .failure(failure)
            }
            let line = VariantConnection.requestLine([("id", .number(Double(id)))] + fields)
            let answer = await connection.exchange(id: id, line: line, deadline: deadline)
            guard case .failure(let failure) = answer, failure.code != "cancelled" else { return answer }
            if failure.code == "closed" {
                wire.withLock { state in
                    if state.connection === connection { state.connection = nil }
                }
                connection.close()
                // A kept connection the daemon closed (a restart) is retried once on a new one.
                if !fresh, attempt == 0, monotonicSeconds() < deadline { continue }
            }
            if ["unreachable", "timeout", "closed"].contains(failure.code) {
                wire.withLock { $0.downUntil = monotonicSeconds() + configuration.retryAfter }
            }
            return answer
        }
        return .failure(.init(code: "closed", message: "the daemon closed the connection"))
    }
}
