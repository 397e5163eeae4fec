import Foundation
import Glibc
import Synchronization
import Testing
import VariantClient
import VariantCore

@testable import VariantDaemon

/// Issue 16, items 7 and 8: descriptors and idle connections. The connection limit fits under the descriptor
/// limit, a failed accept backs off instead of spinning, idle connections are closed, an admin peer has a slot of
/// its own, and refusals are logged once per episode.
@Suite struct ConnectionLimitTests {
    // MARK: The descriptor budget

    @Test(arguments: [
        // connections, reserve, soft, hard -> soft limit to set, connections
        (1024, 64, UInt64(65536), UInt64(65536), UInt64?.none, 1024),  // room enough
        (1024, 64, 1024, 524_288, 1088, 1024),  // raised to what is needed
        (1024, 64, 1024, UInt64.max, 1088, 1024),  // an infinite hard limit
        (1024, 64, 256, 512, 512, 448),  // raised to the hard limit, the rest comes off the connections
        (1024, 64, 1024, 1024, nil, 960),  // cannot be raised: lowered
        (1024, 100, 64, 64, nil, 1),  // never below one connection
    ])
    func theConnectionLimitFitsUnderTheDescriptorLimit(
        connections: Int, reserve: Int, soft: UInt64, hard: UInt64, raised: UInt64?, fitting: Int
    ) {
        #expect(
            DescriptorBudget.plan(connections: connections, reserve: reserve, soft: soft, hard: hard)
                == DescriptorBudget(softLimit: raised, maximumConnections: fitting))
    }

    // MARK: Admission

    /// Two slots and the admin slot: the third peer is asked about, an admin gets the admin slot and nobody a
    /// fourth; refusals are one episode, logged at its start and, with its count, once no refusal came for the
    /// quiet period (a slot that frees meanwhile does not end it).
    @Test func anAdminPeerGetsTheReservedSlotAndRefusalsAreOneEpisode() {
        let start = ContinuousClock.now
        func at(_ seconds: Int) -> ContinuousClock.Instant { start.advanced(by: .seconds(seconds)) }
        var admission = ConnectionAdmission(limit: 2)
        #expect(admission.admit(isAdmin: nil, now: at(0)) == .serve(endedEpisode: nil))
        #expect(admission.admit(isAdmin: nil, now: at(0)) == .serve(endedEpisode: nil))
        #expect(admission.admit(isAdmin: nil, now: at(0)) == .askWhetherAdmin)
        #expect(admission.admit(isAdmin: false, now: at(0)) == .refuse(startsEpisode: true, endedEpisode: nil))
        #expect(admission.admit(isAdmin: false, now: at(1)) == .refuse(startsEpisode: false, endedEpisode: nil))
        #expect(admission.admit(isAdmin: true, now: at(1)) == .serveInAdminSlot)
        // Even an admin is refused once the admin slot is taken; nobody is asked about.
        #expect(admission.admit(isAdmin: nil, now: at(2)) == .refuse(startsEpisode: false, endedEpisode: nil))
        #expect(admission.open == 3)
        admission.closed()
        admission.closed()
        // A slot came free 2 s after the last refusal: the episode goes on.
        #expect(admission.admit(isAdmin: nil, now: at(4)) == .serve(endedEpisode: nil))
        #expect(admission.admit(isAdmin: nil, now: at(5)) == .askWhetherAdmin)
        #expect(admission.admit(isAdmin: false, now: at(5)) == .refuse(startsEpisode: false, endedEpisode: nil))
        admission.closed()
        // 5 s without a refusal: the next connection ends the episode and reports its 4 refusals.
        #expect(admission.admit(isAdmin: nil, now: at(10)) == .serve(endedEpisode: 4))
        // A refusal after a quiet period starts a new episode, reporting the old one if it had not been.
        #expect(admission.admit(isAdmin: false, now: at(11)) == .refuse(startsEpisode: true, endedEpisode: nil))
        #expect(admission.admit(isAdmin: false, now: at(30)) == .refuse(startsEpisode: true, endedEpisode: 1))
    }

    // MARK: The idle timeout, on a clock the test steps

    @Test func anIdleConnectionIsClosedAfterTheTimeoutAndActivityPostponesIt() {
        let clock = SteppedClock()
        var machine = IdleTimeoutStateMachine(timeout: .seconds(300), clock: clock)
        let start = clock.now
        #expect(machine.activated() == .schedule(deadline: start.advanced(by: .seconds(300))))
        clock.advance(by: .seconds(100))
        machine.activity()
        clock.advance(by: .seconds(200))
        // Due at 300 s, but there was activity at 100 s: check again at 400 s.
        #expect(machine.checkDue() == .schedule(deadline: start.advanced(by: .seconds(400))))
        clock.advance(by: .seconds(99))
        #expect(machine.checkDue() == .schedule(deadline: start.advanced(by: .seconds(400))))
        clock.advance(by: .seconds(1))
        #expect(machine.checkDue() == .close)
        #expect(machine.checkDue() == .none)  // closed once
    }

    @Test func aClosedConnectionIsNotClosedAgain() {
        let clock = SteppedClock()
        var machine = IdleTimeoutStateMachine(timeout: .seconds(1), clock: clock)
        _ = machine.activated()
        machine.deactivated()
        clock.advance(by: .seconds(5))
        #expect(machine.checkDue() == .none)
    }

    // MARK: Through the real daemon

    /// Idle connections were kept for ever (1,024 of them locked everyone out). With `--idle-timeout 0.5` a
    /// connection that sends nothing is closed by the daemon; one that keeps asking is not.
    @Test func theDaemonClosesIdleConnections() throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--idle-timeout", "0.5"])
        let idle = try RawSocket(path: daemon.socketPath, timeoutSeconds: 60)
        #expect(idle.peerClosed())  // blocks until the daemon closes it
        #expect(try daemon.ask(#"{"op":"health"}"#)["ok"] == .bool(true))
        #expect(daemon.stop() == 0)
    }

    /// The client shim keeps its connection between requests; once the daemon closes it as idle, the next
    /// request is answered on a new connection (the shim retries a closed kept connection once), not a fallback.
    @Test func aKeptClientConnectionClosedAsIdleIsReplacedWithoutAFallback() throws {
        let daemon = try DaemonFixture(config: exampleConfig, arguments: ["--idle-timeout", "0.2"])
        let client = VariantClient(socketPath: daemon.socketPath, timeout: 5)
        #expect(!client.assign("checkout-prompt", unit: "user-42").isFallback)
        #expect(eventually { daemon.logs.contains("connection.idle_closed") })
        #expect(!client.assign("checkout-prompt", unit: "user-43").isFallback)
        #expect(client.counters.fallbacks == 0)
        #expect(daemon.stop() == 0)
    }

    /// Under a descriptor limit of 128 (`ulimit -n`) and the default `--max-connections` 1024, 513 of 2,000
    /// clients got no answer at all and the daemon spun a CPU. Now the connection limit is lowered to fit (logged
    /// once), every client gets an answer or `too_many_connections`, the refusals are logged once with a count,
    /// and the daemon answers again once the clients are gone.
    @Test func underALowDescriptorLimitEveryClientGetsAnAnswerOrARefusal() throws {
        let daemon = try DaemonFixture(
            config: exampleConfig, launcher: ["/bin/sh", "-c", #"ulimit -n 128 && exec "$0" "$@""#])
        let logs = daemon.logs
        #expect(logs.contains("connection.limit_lowered"), "\(logs)")
        var sockets: [RawSocket] = []
        var answered = 0
        var refused = 0
        for index in 0..<200 {
            let socket = try RawSocket(path: daemon.socketPath)
            // A refused connection may be answered and closed before the request is written.
            try? socket.write(#"{"id":\#(index),"op":"health"}"# + "\n")
            let line = socket.readLines(1).first.flatMap(parseObject)
            if line?["ok"] == .bool(true) {
                answered += 1
            } else if line?["error"]?.objectValue?["code"] == .string("too_many_connections") {
                refused += 1
            }
            sockets.append(socket)
        }
        #expect(answered + refused == 200, "\(200 - answered - refused) clients got neither an answer nor a refusal")
        #expect(answered >= 2 && refused >= 1, "answered \(answered), refused \(refused)")
        sockets.removeAll()
        #expect(eventually { (try? daemon.ask(#"{"op":"health"}"#))?["ok"] == .bool(true) })
        // The episode ends at the first connection served once refusals stopped for the quiet period (5 s).
        #expect(
            eventually {
                _ = try? daemon.ask(#"{"op":"health"}"#)
                return daemon.logs.contains("connection.refusals_ended")
            })
        let after = daemon.logs
        #expect(after.components(separatedBy: "connection.refused").count == 2, "one line for the episode:\n\(after)")
        #expect(daemon.stop() == 0)
    }

    /// Out of descriptors at accept (here: the running daemon's limit lowered under what it holds, with
    /// `prlimit`), the daemon retried at once forever, a CPU at 100%. Now it waits between attempts (little CPU),
    /// logs the episode once, and every waiting client is answered as descriptors come free.
    @Test func outOfDescriptorsTheDaemonBacksOffAndAnswersEveryoneLater() throws {
        let daemon = try DaemonFixture(config: exampleConfig)
        let open = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(daemon.pid)/fd").count
        let limit = open + 8
        let prlimit = try runProgram("/usr/bin/prlimit", ["--pid", "\(daemon.pid)", "--nofile=\(limit):\(limit)"])
        try #require(prlimit.status == 0, "\(prlimit.stderr)")
        var sockets: [RawSocket?] = []
        for index in 0..<40 {
            let socket = try RawSocket(path: daemon.socketPath, timeoutSeconds: 60)
            try socket.write(#"{"id":\#(index),"op":"health"}"# + "\n")
            sockets.append(socket)
        }
        #expect(eventually { daemon.logs.contains("connection.accept_failed") }, "\(daemon.logs)")
        // A rate needs a span of time: the CPU the daemon uses over one second while accepts fail.
        let before = try Self.cpuTicks(of: daemon.pid)
        usleep(1_000_000)
        let used = try Self.cpuTicks(of: daemon.pid) - before
        let ticksPerSecond = sysconf(Int32(_SC_CLK_TCK))
        #expect(used < ticksPerSecond / 4, "the daemon used \(used) of \(ticksPerSecond) ticks in one second")
        // Each client in turn reads its answer and leaves, freeing a descriptor for the next.
        var answered = 0
        for index in sockets.indices {
            let line = sockets[index]?.readLines(1).first.flatMap(parseObject)
            if line?["ok"] == .bool(true) || line?["error"]?.objectValue?["code"] == .string("too_many_connections") {
                answered += 1
            }
            sockets[index] = nil
        }
        sockets.removeAll()
        #expect(answered == 40)
        #expect(eventually { daemon.logs.contains("connection.accept_resumed") })
        #expect(daemon.logs.components(separatedBy: "connection.accept_failed").count == 2, "\(daemon.logs)")
        #expect(daemon.stop() == 0)
    }

    /// 1,024 idle connections from one local user locked everyone out, variantctl included. Now, with every slot
    /// held, a peer that is not an admin (uid 65534) is refused and an admin peer (root) still gets in.
    @Test(.enabled(if: canConnectAsAnotherUser, "needs root, setpriv(1) and /usr/bin/python3 to connect as uid 65534"))
    func aFullDaemonStillLetsAnAdminIn() throws {
        let daemon = try DaemonFixture(
            config: exampleConfig, arguments: ["--max-connections", "2", "--socket-mode", "0666"])
        #expect(chmod(daemon.directory.path, 0o711) == 0)
        let held = try (0..<2).map { _ in try RawSocket(path: daemon.socketPath) }
        for socket in held {
            try socket.write(#"{"op":"health"}"# + "\n")
            #expect(socket.readLines(1).first.flatMap(parseObject)?["ok"] == .bool(true))
        }
        let script = """
            import socket, sys
            s = socket.socket(socket.AF_UNIX)
            s.connect(sys.argv[1])
            try:
                s.sendall(b'{"op":"health"}\\n')
            except BrokenPipeError:
                pass  # refused: the daemon may have answered and closed before the request was written
            print(s.makefile().readline(), end="")
            """
        let nobody = try runProgram(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", script, daemon.socketPath])
        #expect(parseObject(nobody.stdout)?["error"]?.objectValue?["code"] == .string("too_many_connections"), "\(nobody)")
        let admin = try RawSocket(path: daemon.socketPath)
        try admin.write(#"{"op":"health"}"# + "\n")
        #expect(admin.readLines(1).first.flatMap(parseObject)?["ok"] == .bool(true))
        #expect(daemon.logs.contains("connection.admin_slot"))
        #expect(daemon.stop() == 0)
    }

    /// utime + stime of a process, in clock ticks (`/proc/PID/stat` fields 14 and 15).
    static func cpuTicks(of pid: Int32) throws -> Int {
        let stat = try String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)
        let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
        // After the command name: field 3 is the first here, so utime (14) and stime (15) are at 11 and 12.
        return (Int(fields[11]) ?? 0) + (Int(fields[12]) ?? 0)
    }
}

/// Whether a test can connect to the daemon as another user (uid 65534): as root, with setpriv(1) and a Python
/// outside root's home.
private let canConnectAsAnotherUser: Bool =
    geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")
    && FileManager.default.isExecutableFile(atPath: "/usr/bin/python3")
