import Foundation
import Glibc
import VariantClient
import VariantCore

/// A real `variantd` process on a temporary socket and config file, for integration tests.
///
/// Ready once its socket accepts a connection; stopped (SIGKILL if it must) on every path by `stop()` or deinit.
final class DaemonFixture {
    let directory: URL
    let configPath: String
    let socketPath: String
    let logPath: String
    private let process = Process()
    private(set) var exitStatus: Int32?

    /// The folder holding the built products (`variantd`, `variantctl`), next to the test bundle.
    static var productsDirectory: URL {
        let testBinary = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return testBinary.deletingLastPathComponent()
    }

    static func product(_ name: String) -> String {
        productsDirectory.appendingPathComponent(name).path
    }

    /// Starts the daemon. With `config` nil no config file is written. `environment` is added to the test's own.
    /// - Parameter stateDirectory: where the daemon keeps its state; a folder inside the fixture's own by default
    ///   (pass one outside it to restart a daemon on the same state).
    /// - Parameter launcher: a command that runs the daemon with its arguments, replacing itself with it (`exec`),
    ///   such as a shell that lowers the descriptor limit first; none by default.
    init(
        config: String?, arguments: [String] = [], environment: [String: String] = [:], stateDirectory: String? = nil,
        waitForSocket: Bool = true, launcher: [String] = []
    ) throws {
        let template = FileManager.default.temporaryDirectory.appendingPathComponent("variantd-test-XXXXXX").path
        var buffer = Array(template.utf8CString)
        guard let created = mkdtemp(&buffer) else { throw FixtureError("mkdtemp failed") }
        directory = URL(fileURLWithPath: String(cString: created))
        configPath = directory.appendingPathComponent("config.json").path
        socketPath = directory.appendingPathComponent("variantd.sock").path
        logPath = directory.appendingPathComponent("variantd.log").path
        if let config { try writeConfig(config) }
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw FixtureError("cannot create \(logPath)")
        }
        process.executableURL = URL(fileURLWithPath: launcher.first ?? Self.product("variantd"))
        process.arguments =
            launcher.dropFirst() + (launcher.isEmpty ? [] : [Self.product("variantd")])
            + Self.defaults(
                [
                    ("--config", configPath), ("--socket", socketPath), ("--poll-interval", "0.1"),
                    ("--log-level", "debug"), ("--state-dir", stateDirectory ?? directory.appendingPathComponent("state").path),
                ], exceptThoseIn: arguments) + arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        if waitForSocket { try waitUntilListening() }
    }

    /// The fixture's own flags and values, less those `arguments` gives (a test's `--config URL` replaces the
    /// fixture's file rather than being given after it).
    static func defaults(_ flags: [(String, String)], exceptThoseIn arguments: [String]) -> [String] {
        flags.filter { !arguments.contains($0.0) }.flatMap { [$0.0, $0.1] }
    }

    deinit {
        stop(signal: SIGKILL)
        try? FileManager.default.removeItem(at: directory)
    }

    func writeConfig(_ text: String) throws {
        // Write beside and rename, as an operator's deploy tool would, so the daemon never reads half a file.
        let staging = configPath + ".tmp"
        try Data(text.utf8).write(to: URL(fileURLWithPath: staging))
        guard rename(staging, configPath) == 0 else { throw FixtureError("rename failed") }
    }

    func waitUntilListening() throws {
        var listening = false
        _ = eventually {
            listening = (try? VariantConnection(socketPath: socketPath, timeoutSeconds: 1)) != nil
            return listening || !process.isRunning
        }
        if listening { return }
        if !process.isRunning { throw FixtureError("variantd exited early:\n\(logs)") }
        throw FixtureError("variantd did not listen on \(socketPath) within \(patience):\n\(logs)")
    }

    func connect(timeout: Double = 5) throws -> VariantConnection {
        try VariantConnection(socketPath: socketPath, timeoutSeconds: timeout)
    }

    /// Sends one request on a new connection and returns the answer as a JSON object.
    func ask(_ line: String) throws -> JSONObject {
        let answer = try connect().request(line)
        guard case .object(let object) = try JSONParser.parse(Array(answer.utf8)) else {
            throw FixtureError("not an object: \(answer)")
        }
        return object
    }

    var logs: String {
        (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
    }

    var pid: Int32 { process.processIdentifier }

    var isRunning: Bool { process.isRunning }

    func send(signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Stops the daemon with `signal` and returns its exit status (or the signal that ended it, negated).
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Double = 15) -> Int32? {
        if let exitStatus { return exitStatus }
        guard process.processIdentifier > 0 else { return nil }
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(5_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let status = process.terminationReason == .uncaughtSignal ? -process.terminationStatus : process.terminationStatus
        exitStatus = status
        return status
    }
}

struct FixtureError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A raw Unix-socket client for tests that need to misbehave (half lines, huge lines, many lines at once).
final class RawSocket: Sendable {
    let descriptor: Int32

    init(path: String, timeoutSeconds: Int = 10) throws {
        descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            close(descriptor)
            throw FixtureError("connect: \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(descriptor) }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw FixtureError("write: \(String(cString: strerror(errno)))") }
            offset += written
        }
    }

    func write(_ text: String) throws { try write(Array(text.utf8)) }

    /// Reads until `count` newline-terminated lines arrived or the peer closed; returns the lines read.
    func readLines(_ count: Int) -> [String] {
        var lines: [String] = []
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while lines.count < count {
            let received = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received <= 0 { break }
            for byte in chunk[0..<received] {
                if byte == UInt8(ascii: "\n") {
                    lines.append(String(decoding: pending, as: UTF8.self))
                    pending.removeAll(keepingCapacity: true)
                } else {
                    pending.append(byte)
                }
            }
        }
        return lines
    }

    /// Whether the peer has closed the connection (a read returns end of file).
    func peerClosed() -> Bool {
        var byte: UInt8 = 0
        return recv(descriptor, &byte, 1, 0) == 0
    }
}

/// The bundled example configuration, shared by most tests.
let exampleConfig: String = {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    return try! String(contentsOf: root.appendingPathComponent("examples/variantd.json"), encoding: .utf8)
}()

func parseObject(_ line: String) -> JSONObject? {
    (try? JSONParser.parse(Array(line.utf8)))?.objectValue
}
