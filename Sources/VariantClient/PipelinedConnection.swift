import Foundation
import Glibc
import Synchronization
import VariantCore

/// One connection to the daemon carrying many tasks' requests at once: each request line is written as soon as it
/// is asked, and a reader thread hands each answer to the task waiting for its id, or fails the task at its
/// deadline. The transport under `AsyncVariantClient`.
///
/// A waiting task is never left waiting: its answer, its deadline (`timeout`), its cancellation (`cancelled`) or
/// the end of the connection (`closed`, for every task waiting then) resumes it, whichever comes first; a late
/// answer to a task that has gone is dropped. A connection that ended takes no more requests.
final class PipelinedConnection: @unchecked Sendable {
    typealias Failure = VariantClient.Failure
    typealias Answer = Result<JSONObject, Failure>

    private struct Waiting {
        var continuation: CheckedContinuation<Answer, Never>
        var deadline: Double
    }

    private struct State {
        var waiting: [Int: Waiting] = [:]
        var open = true
        /// When the reader's current wait ends; a request due earlier wakes it through the wake pipe.
        var readerWakesAt = Double.infinity
    }

    // `@unchecked Sendable`: `connection` is written to only under `writing`, and read from only by the reader
    // thread (through its descriptor, which never changes); everything else is in `state`, under its lock.
    private let connection: VariantConnection
    private let writing = Mutex(())
    private let state = Mutex(State())
    /// A pipe whose read end the reader polls beside the socket, so that a request with an earlier deadline than
    /// the reader's wait, or `close`, wakes it.
    private let wakeReader: Int32
    private let wakeWriter: Int32

    /// Connects; writes may block for at most `timeoutSeconds` (a daemon that stopped reading).
    init(socketPath: String, timeoutSeconds: Double) throws(VariantConnection.Failure) {
        connection = try VariantConnection(socketPath: socketPath, timeoutSeconds: timeoutSeconds)
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else {
            throw VariantConnection.Failure(kind: .io, description: "pipe(): \(String(cString: strerror(errno)))")
        }
        for end in ends {
            _ = fcntl(end, F_SETFL, fcntl(end, F_GETFL) | O_NONBLOCK)
            _ = fcntl(end, F_SETFD, FD_CLOEXEC)
        }
        wakeReader = ends[0]
        wakeWriter = ends[1]
        let thread = Thread { [self] in readAnswers() }
        thread.name = "variantd-answers"
        thread.start()
    }

    deinit {
        Glibc.close(wakeReader)
        Glibc.close(wakeWriter)
    }

    /// Whether the connection still takes requests.
    var isOpen: Bool { state.withLock { $0.open } }

    /// Sends `line` (a request with the id `id`) and waits for its answer until `deadline` (monotonic seconds).
    func exchange(id: Int, line: String, deadline: Double) async -> Answer {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Answer, Never>) in
                let (accepted, wake) = state.withLock { state -> (Bool, Bool) in
                    guard state.open else { return (false, false) }
                    state.waiting[id] = Waiting(continuation: continuation, deadline: deadline)
                    return (true, deadline < state.readerWakesAt)
                }
                guard accepted else {
                    continuation.resume(returning: .failure(Failure(code: "closed", message: "the connection ended")))
                    return
                }
                if wake { signalReader() }
                // Cancelled before the handler could find the request waiting: finish it here.
                if Task.isCancelled {
                    finish(id, .failure(Failure(code: "cancelled", message: "the calling task was cancelled")))
                    return
                }
                do throws(VariantConnection.Failure) {
                    try writing.withLock { (_: inout ()) throws(VariantConnection.Failure) in
                        try connection.send(line)
                    }
                } catch {
                    if error.kind == .timedOut {
                        finish(id, .failure(Failure(code: "timeout", message: error.description)))
                    } else {
                        end(because: error.description)
                    }
                }
            }
        } onCancel: {
            finish(id, .failure(Failure(code: "cancelled", message: "the calling task was cancelled")))
        }
    }

    /// Ends the connection: every waiting request fails with `closed`, and the reader thread exits.
    func close() {
        end(because: "the client closed the connection")
    }

    /// Resumes the request `id` with `answer` if it is still waiting.
    private func finish(_ id: Int, _ answer: Answer) {
        let waiting = state.withLock { $0.waiting.removeValue(forKey: id) }
        waiting?.continuation.resume(returning: answer)
    }

    /// Takes no more requests, fails those waiting with `closed`, and wakes the reader so that it exits.
    private func end(because reason: String) {
        let waiting = state.withLock { state -> [Waiting] in
            state.open = false
            defer { state.waiting.removeAll() }
            return Array(state.waiting.values)
        }
        shutdown(connection.descriptor, Int32(SHUT_RDWR))
        signalReader()
        for request in waiting {
            request.continuation.resume(returning: .failure(Failure(code: "closed", message: reason)))
        }
    }

    private func signalReader() {
        var byte: UInt8 = 1
        _ = write(wakeWriter, &byte, 1)
    }

    /// The reader thread: waits for answers (or the earliest deadline), hands each answer to its request, and
    /// fails the requests whose deadline passed; returns once the connection ended.
    private func readAnswers() {
        let chunkSize = 1 << 16
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: 1)
        defer { chunk.deallocate() }
        var pending: [UInt8] = []
        var descriptors = [
            pollfd(fd: connection.descriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: wakeReader, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            let (open, expired, waitMilliseconds) = state.withLock { state -> (Bool, [Waiting], Int32) in
                let now = monotonicSeconds()
                var expired: [Waiting] = []
                var earliest = Double.infinity
                for (id, request) in state.waiting {
                    if request.deadline <= now {
                        expired.append(request)
                        state.waiting[id] = nil
                    } else {
                        earliest = min(earliest, request.deadline)
                    }
                }
                state.readerWakesAt = earliest
                let wait = earliest.isFinite ? Int32(min(((earliest - now) * 1000).rounded(.up), 60_000)) : -1
                return (state.open, expired, wait)
            }
            for request in expired {
                request.continuation.resume(returning: .failure(Failure(code: "timeout", message: "no answer in time")))
            }
            guard open else { return }
            descriptors[0].revents = 0
            descriptors[1].revents = 0
            let ready = poll(&descriptors, 2, waitMilliseconds)
            if ready < 0, errno != EINTR { return end(because: "poll: \(String(cString: strerror(errno)))") }
            if descriptors[1].revents != 0 {
                while read(wakeReader, chunk.baseAddress, chunkSize) > 0 {}
            }
            guard descriptors[0].revents != 0 else { continue }
            let count = read(connection.descriptor, chunk.baseAddress, chunkSize)
            if count == 0 { return end(because: "the daemon closed the connection") }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                return end(because: "read: \(String(cString: strerror(errno)))")
            }
            pending.append(contentsOf: chunk[0..<count])
            var lineStart = 0
            while let newline = pending[lineStart...].firstIndex(of: UInt8(ascii: "\n")) {
                deliver(pending[lineStart..<newline])
                lineStart = newline + 1
            }
            pending.removeSubrange(0..<lineStart)
        }
    }

    /// Hands one answer line to the request with its id. An error answer without an id (a line the daemon could
    /// not read) and a line that is not JSON go to the oldest request waiting: the daemon answers in order.
    private func deliver(_ line: ArraySlice<UInt8>) {
        guard case .object(let answer)? = try? JSONParser.parse(Array(line)) else {
            let text = String(decoding: line.prefix(200), as: UTF8.self)
            return finishOldest(.failure(Failure(code: "invalid_answer", message: "not a JSON object: \(text)")))
        }
        if let id = answer["id"]?.integerValue { return finish(id, .success(answer)) }
        if answer["ok"] == .bool(false) {
            let code = answer["error"]?.objectValue?["code"]?.stringValue ?? "invalid_answer"
            finishOldest(.failure(Failure(code: code)))
        }
    }

    private func finishOldest(_ answer: Answer) {
        let oldest = state.withLock { state -> Waiting? in
            guard let id = state.waiting.keys.min() else { return nil }
            return state.waiting.removeValue(forKey: id)
        }
        oldest?.continuation.resume(returning: answer)
    }
}
