import Dispatch
import Glibc
import Logging
import NIOCore
import NIOPosix
import Testing
import VariantCore
@testable import VariantDaemon

/// A request whose answer waits for the state file (`disable`, `enable`, `new_phase`) is answered on the thread
/// pool: while its write lasts, the event loop serves every other connection, and its own connection's later lines
/// wait and are answered after it, in order. Real sockets (socket pairs) on a real one-thread event loop.
@Suite(.serialized) struct DurableRequestTests {
    /// One end of a socket pair served by a `RequestLineHandler` on `group`; the test reads and writes the other.
    final class Connection {
        let descriptor: Int32
        let channel: any Channel
        private var received: [UInt8] = []

        init(group: any EventLoopGroup, context: RequestContext) throws {
            var ends: [Int32] = [0, 0]
            guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &ends) == 0 else { throw FixtureError("socketpair failed") }
            descriptor = ends[1]
            var timeout = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let store = try RequestLineHandlerTests.store()
            channel = try NIOPipeBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            RequestLineHandler(store: store, context: context, maximumLineBytes: 65536, logger: Logger(label: "test")))
                    }
                }
                .takingOwnershipOfDescriptor(inputOutput: ends[0]).wait()
        }

        deinit {
            close(descriptor)
            try? channel.close().wait()
        }

        func send(_ text: String) {
            let bytes = Array(text.utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// The next answer line, waiting for it (at most 30 s: a failing test ends rather than hangs).
        func answer() throws -> JSONObject {
            while true {
                if let newline = received.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Array(received[..<newline])
                    received.removeFirst(newline + 1)
                    return try #require(try JSONParser.parse(line).objectValue)
                }
                var chunk = [UInt8](repeating: 0, count: 4096)
                let count = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
                guard count > 0 else { throw FixtureError("no answer (recv: \(count), errno \(errno))") }
                received += chunk[..<count]
            }
        }
    }

    /// A state write that starts, then waits until the test lets it finish.
    final class HeldWrite: Sendable {
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)

        func context(ledger: ExperimentLedger) -> RequestContext {
            RequestContext(
                ledger: ledger, caller: Caller(pid: nil, uid: 0, gid: 0, mayAdminister: true),
                treatmentsChanged: { _ in }, reload: { false },
                persist: { [self] in
                    started.signal()
                    return release.wait(timeout: .now() + 30) == .success ? nil : "the test never released the write"
                })
        }
    }

    @Test func otherConnectionsAreServedDuringAStateWriteAndItsConnectionsAnswersStayInOrder() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let write = HeldWrite()
        let ledger = ExperimentLedger()
        let admin = try Connection(group: group, context: write.context(ledger: ledger))
        let other = try Connection(group: group, context: write.context(ledger: ledger))

        admin.send(
            #"{"id":1,"op":"health"}"# + "\n" + #"{"id":2,"op":"disable","experiment":"checkout-prompt","variant":"concise"}"#
                + "\n" + #"{"id":3,"op":"assign","experiment":"checkout-prompt","unit":"u1"}"# + "\n")
        #expect(try admin.answer()["id"] == .number(1))
        #expect(write.started.wait(timeout: .now() + 30) == .success)
        // The write is in progress: the event loop (one thread, serving both connections) answers the other one.
        other.send(#"{"id":7,"op":"assign","experiment":"checkout-prompt","unit":"u1"}"# + "\n")
        let served = try other.answer()
        #expect(served["id"] == .number(7) && served["ok"] == .bool(true))

        write.release.signal()
        let disabled = try admin.answer()
        #expect(disabled["id"] == .number(2) && disabled["ok"] == .bool(true), "\(disabled)")
        let assigned = try admin.answer()
        #expect(assigned["id"] == .number(3))
        #expect(assigned["variant"] == .string("control"), "the line after the disable is answered after it: \(assigned)")
    }

    @Test func aFailedStateWriteIsStillAnsweredStateNotDurable() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let context = RequestContext(
            ledger: ExperimentLedger(), caller: Caller(pid: nil, uid: 0, gid: 0, mayAdminister: true),
            treatmentsChanged: { _ in }, reload: { false }, persist: { "disk full" })
        let connection = try Connection(group: group, context: context)
        connection.send(#"{"id":4,"op":"enable","experiment":"checkout-prompt","variant":"concise"}"# + "\n" + #"{"id":5,"op":"health"}"# + "\n")
        let refused = try connection.answer()
        #expect(refused["id"] == .number(4))
        #expect(refused["error"]?.objectValue?["code"] == .string("state_not_durable"), "\(refused)")
        #expect(try connection.answer()["id"] == .number(5))
    }
}
