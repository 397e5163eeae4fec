import Foundation
import Glibc
import Testing
import VariantClient
import VariantCore

/// The real daemon started by systemd's own `systemd-socket-activate`, which binds the socket and passes it with
/// `LISTEN_FDS`, as `variantd.socket` does.
@Suite(.serialized) struct SystemdSocketActivationTests {
    @Test(.enabled(if: Requires.socketActivate, "needs systemd-socket-activate (Debian package systemd)"))
    func servesOnTheInheritedSocketAndNeverBindsItsOwn() throws {
        let activate = try #require(SystemdTools.path("systemd-socket-activate"))
        let directory = try SystemdTools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try exampleConfig.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        let activated = directory + "/activated.sock"
        let own = directory + "/own.sock"
        let child = try ChildProcess(
            executable: activate,
            arguments: [
                "-l", activated, "-E", "VARIANTD_LOG_LEVEL=debug", "-E", "VARIANTD_LOG_FORMAT=text",
                DaemonFixture.product("variantd"), "--config", directory + "/config.json", "--socket", own,
            ],
            logPath: directory + "/variantd.log")
        #expect(FileManager.default.fileExists(atPath: activated) || child.eventuallyExists(activated))

        // The first connection makes systemd-socket-activate exec variantd with the listening socket. The file
        // exists from bind() on, a moment before listen(): a refused connection then is retried (seen in CI).
        var opened: VariantConnection?
        #expect(eventually {
            opened = try? VariantConnection(socketPath: activated, timeoutSeconds: 20)
            return opened != nil
        })
        let connection = try #require(opened)
        let answer = try #require(
            parseObject(try connection.request(#"{"id":1,"op":"assign","experiment":"checkout-prompt","unit":"u-7"}"#)),
            "\(child.logs)")
        #expect(answer["ok"] == .bool(true))
        #expect(answer["config_version"] == .string(LoadedConfig.version(of: Array(exampleConfig.utf8))))
        for index in 0..<50 {
            let line = try connection.request(#"{"id":\#(index),"op":"health"}"#)
            #expect(parseObject(line)?["id"] == .number(Double(index)))
        }
        let second = try VariantConnection(socketPath: activated, timeoutSeconds: 5)
        #expect(parseObject(try second.request(#"{"op":"health"}"#))?["status"] == .string("serving"))

        #expect(!FileManager.default.fileExists(atPath: own), "variantd bound --socket despite socket activation")
        #expect(child.logs.contains("socket.activated=true"), "\(child.logs)")

        child.send(SIGTERM)
        #expect(child.wait() == 0, "\(child.logs)")
        // systemd owns the socket file: the daemon leaves it in place.
        #expect(FileManager.default.fileExists(atPath: activated))
        #expect(!FileManager.default.fileExists(atPath: own))
    }

    @Test(.enabled(if: Requires.socketActivate, "needs systemd-socket-activate (Debian package systemd)"))
    func aDatagramSocketIsAClearStartupError() throws {
        let activate = try #require(SystemdTools.path("systemd-socket-activate"))
        let directory = try SystemdTools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try exampleConfig.write(toFile: directory + "/config.json", atomically: true, encoding: .utf8)
        let activated = directory + "/activated.sock"
        let own = directory + "/own.sock"
        let child = try ChildProcess(
            executable: activate,
            arguments: [
                "--datagram", "-l", activated, DaemonFixture.product("variantd"), "--config",
                directory + "/config.json", "--socket", own,
            ],
            logPath: directory + "/variantd.log")
        #expect(child.eventuallyExists(activated))
        // A datagram wakes systemd-socket-activate, which execs variantd with the datagram socket.
        let sender = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(sender) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(activated.utf8))
            raw[activated.utf8.count] = 0
        }
        let sent = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(sender, "x", 1, 0, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        #expect(sent == 1)
        let status = child.wait(timeout: 20)
        #expect(status != 0 && status > 0, "\(child.logs)")
        #expect(child.logs.contains("listen_fd_not_unix_stream"), "\(child.logs)")
        #expect(!FileManager.default.fileExists(atPath: own))
    }

    @Test func aDescriptorThatIsNotASocketIsAClearStartupError() throws {
        // LISTEN_FDS=1 with /dev/null as descriptor 3, for this very process (LISTEN_PID=$$ before exec).
        let directory = try SystemdTools.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let child = try ChildProcess(
            executable: "/bin/sh",
            arguments: [
                "-c", #"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" --config /nonexistent --socket "$1" 3</dev/null"#,
                DaemonFixture.product("variantd"), directory + "/own.sock",
            ],
            logPath: directory + "/variantd.log")
        let status = child.wait()
        #expect(status > 0, "\(child.logs)")
        #expect(child.logs.contains("listen_fd_not_unix_stream"), "\(child.logs)")
        #expect(!FileManager.default.fileExists(atPath: directory + "/own.sock"))
    }
}

extension ChildProcess {
    func eventuallyExists(_ path: String) -> Bool {
        eventually { FileManager.default.fileExists(atPath: path) }
    }
}
