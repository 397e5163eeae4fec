import Glibc
import Synchronization

/// The benchmark's running child processes, for the interrupt handler.
///
/// Foundation's `Process` starts every child in a process group of its own, out of reach of the terminal's
/// Ctrl-C, so a benchmark interrupted mid-run would leave variantd (or the floor server) running and distorting every
/// later measurement on the machine. The handler sends them SIGTERM before the benchmark dies of the signal.
enum ChildProcesses {
    /// What a child process is to the benchmark; there is at most one of each at a time.
    enum Role {
        /// The started variantd.
        case daemon
        /// The floor server (udsfloor.c's server).
        case floor
        /// The NIO reference server.
        case reference
        /// gcc, or a client program (the Python shim's benchmark).
        case helper
    }

    private static let daemon = Atomic<pid_t>(0)
    private static let floor = Atomic<pid_t>(0)
    private static let reference = Atomic<pid_t>(0)
    private static let helper = Atomic<pid_t>(0)

    /// Records the running child `pid` in `role`, or, with `pid` 0, that no child has that role any more.
    static func record(_ pid: pid_t, as role: Role) {
        switch role {
        case .daemon: daemon.store(pid, ordering: .relaxed)
        case .floor: floor.store(pid, ordering: .relaxed)
        case .reference: reference.store(pid, ordering: .relaxed)
        case .helper: helper.store(pid, ordering: .relaxed)
        }
    }

    /// Installs the handler for SIGINT, SIGTERM and SIGHUP.
    static func terminateOnInterrupt() {
        // Initialize the statics now: lazy initialization is not safe inside a signal handler.
        daemon.store(0, ordering: .relaxed)
        floor.store(0, ordering: .relaxed)
        reference.store(0, ordering: .relaxed)
        helper.store(0, ordering: .relaxed)
        for interrupt in [SIGINT, SIGTERM, SIGHUP] {
            signal(interrupt) { interrupt in
                // Only async-signal-safe work here: atomic loads and system calls, no allocation.
                let daemon = ChildProcesses.daemon.load(ordering: .relaxed)
                if daemon > 0 { kill(daemon, SIGTERM) }
                let floor = ChildProcesses.floor.load(ordering: .relaxed)
                if floor > 0 { kill(floor, SIGTERM) }
                let reference = ChildProcesses.reference.load(ordering: .relaxed)
                if reference > 0 { kill(reference, SIGTERM) }
                let helper = ChildProcesses.helper.load(ordering: .relaxed)
                if helper > 0 { kill(helper, SIGTERM) }
                signal(interrupt, SIG_DFL)
                raise(interrupt)
            }
        }
    }
}
