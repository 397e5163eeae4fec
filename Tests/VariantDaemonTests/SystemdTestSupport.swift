import Foundation
import Glibc

/// Helpers for the systemd tests: the real tools, a child process with its own environment, and a
/// `NOTIFY_SOCKET` listener.
enum SystemdTools {
    /// The path of a systemd tool, or nil when it is not installed (the test then says so and skips).
    static func path(_ name: String) -> String? {
        for directory in ["/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/lib/systemd", "/lib/systemd"] {
            let candidate = directory + "/" + name
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// A fresh temporary folder.
    static func temporaryDirectory(_ prefix: String = "variantd-systemd") throws -> String {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else { throw FixtureError("mkdtemp failed") }
        return String(cString: created)
    }

    /// Runs a command to completion and returns its exit status and combined output; with `input` on its standard
    /// input (else none), in `directory` (else the test's).
    @discardableResult
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String] = [:], input: String = "",
        in directory: String? = nil
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let pipe = Pipe()
        let standardInput = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = standardInput
        try process.run()
        standardInput.fileHandleForWriting.write(Data(input.utf8))
        try standardInput.fileHandleForWriting.close()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// A child process (the daemon, or a systemd tool that execs it) with extra environment and stderr in a file.
final class ChildProcess {
    let process = Process()
    let logPath: String

    init(
        executable: String, arguments: [String], environment: [String: String] = [:], removing: [String] = [],
        logPath: String
    ) throws {
        self.logPath = logPath
        var merged = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        for name in removing + ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC", "JOURNAL_STREAM"]
        where environment[name] == nil {
            merged[name] = nil
        }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.environment = merged
        guard FileManager.default.createFile(atPath: logPath, contents: nil) else {
            throw FixtureError("cannot create \(logPath)")
        }
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.standardOutput = process.standardError
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var pid: Int32 { process.processIdentifier }
    var logs: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func send(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Waits for the process to end (SIGKILL after `timeout`) and returns its exit status, or the signal negated.
    func wait(timeout: Double = 15) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning, Date() < deadline { usleep(5_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? -process.terminationStatus : process.terminationStatus
    }
}

/// A `NOTIFY_SOCKET`: a Unix datagram socket bound to a temporary path, as systemd's manager listens on.
final class NotifyListener {
    let path: String
    private let descriptor: Int32

    init(path: String) throws {
        self.path = path
        descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard descriptor >= 0 else { throw FixtureError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard bound == 0 else { throw FixtureError("bind \(path): \(String(cString: strerror(errno)))") }
    }

    deinit {
        close(descriptor)
        unlink(path)
    }

    /// The next notification (one datagram, `KEY=value` lines), or nil after `timeout` seconds.
    func receive(timeout: Double) -> String? {
        var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// Receives until a notification satisfies `condition` (returned) or `timeout` passes (nil); every
    /// notification received on the way is appended to `log`.
    func receive(until condition: (String) -> Bool, timeout: Double, log: inout [String]) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            guard let message = receive(timeout: deadline.timeIntervalSinceNow) else { continue }
            log.append(message)
            if condition(message) { return message }
        }
        return nil
    }
}

extension String {
    /// The `KEY=value` assignments of one sd_notify message.
    var notifyFields: [String: String] {
        var fields: [String: String] = [:]
        for line in split(separator: "\n") {
            guard let equals = line.firstIndex(of: "=") else { continue }
            fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
        }
        return fields
    }
}

/// What some tests need of the machine. A test whose need is not met is reported as skipped, with the reason
/// (`.enabled(if:)`), never passed; none needs more than the machine it runs on can say it has.
enum Requires {
    static let socketActivate = SystemdTools.path("systemd-socket-activate") != nil
    static let systemdAnalyze = SystemdTools.path("systemd-analyze") != nil
    /// systemd-journald and journalctl, and a private mount namespace to run a journal of the test's own in.
    static let privateJournal: Bool = {
        guard SystemdTools.path("systemd-journald") != nil, SystemdTools.path("journalctl") != nil,
            let unshare = SystemdTools.path("unshare")
        else { return false }
        return (try? SystemdTools.run(unshare, ["-m", "--propagation", "private", "true"]))?.status == 0
    }()
    /// Root, to switch to another user with setpriv (util-linux) and the system Python.
    static let anotherUser =
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
        && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")
    /// The kernel's PR_SET_MDWE (Linux 6.3+), which `PR_GET_MDWE` answers where it exists.
    static let memoryDenyWriteExecute =
        (try? SystemdTools.run(
            "/usr/bin/env",
            ["python3", "-c", "import ctypes, sys; sys.exit(0 if ctypes.CDLL(None).prctl(66, 0, 0, 0, 0) >= 0 else 1)"]
        ))?.status == 0
}
