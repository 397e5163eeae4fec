import Foundation
import Glibc

/// A server started by the benchmark (variantd, or the NIO reference server), listening on a socket in the
/// benchmark's temporary directory, with its standard output and standard error going to a log file there.
final class DaemonProcess {
    /// How long `waitUntilAccepting` waits for the socket, and `stop` for the daemon to exit after SIGTERM.
    private static let patience: UInt64 = 10_000_000_000
    /// The interval between two attempts to connect, and between two checks that the daemon has exited.
    private static let pollInterval: useconds_t = 10_000

    private let process: Process
    private let logPath: String
    /// What the server is, for messages.
    private let name: String
    private let role: ChildProcesses.Role

    /// Starts `executable --config config --socket socketPath`.
    convenience init(executable: String, config: String, socketPath: String, logPath: String) throws {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw BenchError("no variantd executable at \(executable) (build it, or pass --daemon or --socket)")
        }
        guard FileManager.default.fileExists(atPath: config) else {
            throw BenchError("no configuration document at \(config) (pass --config)")
        }
        try self.init(
            name: "variantd", executable: executable, arguments: ["--config", config, "--socket", socketPath],
            logPath: logPath, role: .daemon)
    }

    /// Starts `executable arguments`, recorded as a child in `role`.
    init(name: String, executable: String, arguments: [String], logPath: String, role: ChildProcesses.Role) throws {
        guard FileManager.default.createFile(atPath: logPath, contents: nil),
            let log = FileHandle(forWritingAtPath: logPath)
        else {
            throw BenchError("cannot create the daemon's log file \(logPath)")
        }
        defer { try? log.close() }
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = log
        process.standardError = log
        self.logPath = logPath
        self.name = name
        self.role = role
        try process.run()
        ChildProcesses.record(process.processIdentifier, as: role)
    }

    /// Waits until connecting to `socketPath` succeeds, trying every 10 ms for at most 10 s.
    func waitUntilAccepting(socketPath: String) throws {
        let deadline = monotonicNanoseconds() + Self.patience
        while true {
            guard process.isRunning else {
                throw BenchError("\(name) exited (\(exitDescription)) before accepting connections\n\(logExcerpt)")
            }
            if (try? BenchConnection(socketPath: socketPath)) != nil { return }
            guard monotonicNanoseconds() < deadline else {
                throw BenchError("\(name) did not accept connections on \(socketPath) within 10 s\n\(logExcerpt)")
            }
            usleep(Self.pollInterval)
        }
    }

    /// If the daemon has exited on its own, a description of how, with the end of its log; nil if it is running.
    /// Gives a daemon that is going away (the likely cause of a failed request) 200 ms to finish exiting.
    func unexpectedExit() -> String? {
        let deadline = monotonicNanoseconds() + 200_000_000
        while process.isRunning && monotonicNanoseconds() < deadline {
            usleep(Self.pollInterval)
        }
        return process.isRunning ? nil : "\(name) exited (\(exitDescription)) during the benchmark\n\(logExcerpt)"
    }

    /// Sends SIGTERM and waits for the daemon to exit, sending SIGKILL if it is still running after 10 s.
    func stop() {
        defer { ChildProcesses.record(0, as: role) }
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = monotonicNanoseconds() + Self.patience
        while process.isRunning && monotonicNanoseconds() < deadline {
            usleep(Self.pollInterval)
        }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
    }

    private var exitDescription: String {
        switch process.terminationReason {
        case .exit: "exit status \(process.terminationStatus)"
        case .uncaughtSignal: "signal \(process.terminationStatus)"
        @unknown default: "status \(process.terminationStatus)"
        }
    }

    /// The last 40 lines of the daemon's log, with a heading.
    private var logExcerpt: String {
        let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let lines = log.split(separator: "\n").suffix(40)
        return "\(name)'s log (last 40 lines):\n" + lines.joined(separator: "\n")
    }
}
