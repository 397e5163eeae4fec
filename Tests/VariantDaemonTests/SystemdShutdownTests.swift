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
            // Reader: every answer until end of file (or the reset a close with unread requests causes).
            done.enter()
            Thread {
                defer { done.leave() }
                var pending: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 65536)
                while true {
                    let received = chunk.withUnsafeMutableBytes { recv(socket.descriptor, $0.baseAddress, $0.count, 0) }
                    if received <= 0 {
                        // The connection ended: a half answer would be an answer cut off by the stop.
                        if !pending.isEmpty {
                            record.malformed.withLock { $0 += 1 }
                            record.samples.withLock { $0.append("cut off: " + String(decoding: pending.prefix(200), as: UTF8.self)) }
                        }
                        return
                    }
                    for byte in chunk[0..<received] {
                        guard byte == UInt8(ascii: "\n") else {
                            pending.append(byte)
                            continue
                        }
                        let answer = parseObject(String(decoding: pending, as: UTF8.self))
                        if let answer, answer["ok"] == .bool(true), case .number(let id)? = answer["id"],
                            answer["variant"] != nil
                        {
                            record.answers.withLock { $0.append(Int(id)) }
                        } else {
                            record.malformed.withLock { $0 += 1 }
                            record.samples.withLock { $0.append(String(decoding: pending.prefix(200), as: UTF8.self)) }
                        }
                        pending.removeAll(keepingCapacity: true)
                    }
                }
            }.start()
        }

        // Let every client get well into its stream, then stop the daemon under load.
        let loaded = daemon.eventually(timeout: 20) {
            records.allSatisfy { $0.answers.withLock { $0.count } >= 2000 }
        }
        #expect(loaded, "clients did not get going: \(records.map { $0.answers.withLock { $0.count } })")
        let atSignal = records.map { $0.answers.withLock { $0.count } }
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
                "client \(client): malformed answers: \(record.samples.withLock { $0 })")
        }
        #expect(daemon.logs.contains("server.stopped"))
    }
}
