import Foundation
import Glibc
import Synchronization
import Testing
import VariantCore

/// SIGTERM while clients pipeline requests: the graceful stop systemd's `systemctl stop` relies on.
@Suite(.serialized) struct SystemdShutdownTests {
    /// What one pipelining client saw: the ids of the answers, in the order they came.
    final class ClientRecord: Sendable {
        let answers = Mutex<[Int]>([])
        let malformed = Mutex(0)
        let samples = Mutex<[String]>([])
        /// Complete answers received so far (newlines), while the connection is open.
        let answerCount = Mutex(0)
    }

    @Test func sigtermUnderLoadLosesNoAcknowledgedRequestAndExitsZero() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let clients = 6
        let records = (0..<clients).map { _ in ClientRecord() }
        let sockets = try (0..<clients).map { _ in try RawSocket(path: daemon.socketPath) }
        let done = DispatchGroup()
        for (client, socket) in sockets.enumerated() {
            let record = records[client]
            // Writer: request after request, in batches, until the daemon hangs up.
            Thread {
                var next = 0
                while true {
                    var batch = ""
                    for _ in 0..<64 {
                        batch += #"{"id":\#(next),"op":"assign","experiment":"checkout-prompt","unit":"c\#(client)-\#(next)"}"# + "\n"
                        next += 1
                    }
                    if (try? socket.write(batch)) == nil { return }
                }
            }.start()
            // Reader: every byte until end of file (or the reset a close with unread requests causes), parsed only
            // afterwards, so that the reader keeps up with the daemon even on a loaded machine.
            done.enter()
            Thread {
                defer { done.leave() }
                var received: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = chunk.withUnsafeMutableBytes { recv(socket.descriptor, $0.baseAddress, $0.count, 0) }
                    if count <= 0 { break }
                    received += chunk[0..<count]
                    record.answerCount.withLock { $0 += chunk[0..<count].count { $0 == UInt8(ascii: "\n") } }
                }
                var lines = received.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
                // The connection ended: anything after the last newline is an answer cut off by the stop.
                let tail = lines.removeLast()
                if !tail.isEmpty {
                    record.malformed.withLock { $0 += 1 }
                    record.samples.withLock { $0.append("cut off: " + String(decoding: tail.prefix(200), as: UTF8.self)) }
                }
                for line in lines {
                    let answer = parseObject(String(decoding: line, as: UTF8.self))
                    if let answer, answer["ok"] == .bool(true), case .number(let id)? = answer["id"], answer["variant"] != nil {
                        record.answers.withLock { $0.append(Int(id)) }
                    } else {
                        record.malformed.withLock { $0 += 1 }
                        record.samples.withLock { $0.append(String(decoding: line.prefix(200), as: UTF8.self)) }
                    }
                }
            }.start()
        }

        // Let every client get well into its stream, then stop the daemon under load.
        let loaded = eventually {
            records.allSatisfy { $0.answerCount.withLock { $0 } >= 2000 }
        }
        #expect(loaded, "clients did not get going: \(records.map { $0.answerCount.withLock { $0 } })")
        let atSignal = records.map { $0.answerCount.withLock { $0 } }
        daemon.send(signal: SIGTERM)
        let stopped = Date()
        #expect(daemon.stop(timeout: 15) == 0, "\(daemon.logs)")
        #expect(Date().timeIntervalSince(stopped) < 10)
        #expect(done.wait(timeout: .now() + 15) == .success, "a client never saw the connection end")

        for (client, record) in records.enumerated() {
            let answers = record.answers.withLock { $0 }
            // Every answer is for the next request in order: none lost, none out of order, none twice.
            #expect(answers == Array(0..<answers.count), "client \(client): answers out of sequence")
            #expect(answers.count >= atSignal[client])
            #expect(
                record.malformed.withLock { $0 } == 0,
                "client \(client): malformed answers: \(record.samples.withLock { $0 }); stop timeouts logged: \(daemon.logs.components(separatedBy: "connection.stop_timeout").count - 1)")
        }
        #expect(daemon.logs.contains("server.stopped"))
    }
}
