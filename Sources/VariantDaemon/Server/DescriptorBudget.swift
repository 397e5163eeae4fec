import Glibc

/// How many connections fit under the descriptor limit (`RLIMIT_NOFILE`): every connection holds a descriptor, and
/// one over the limit must still be accepted to be answered `too_many_connections`; without a descriptor to accept
/// it with (EMFILE) it gets no answer at all. So the connection limit stays below the soft limit by a reserve (the
/// descriptors the daemon holds besides connections, and room for the ones it opens for a moment), raising the soft
/// limit up to the hard one when that is enough, and lowering the connection limit when it is not.
public struct DescriptorBudget: Sendable, Equatable {
    /// The soft limit to set, when the current one is too low and the hard one allows more.
    public var softLimit: UInt64?
    /// The connections that fit.
    public var maximumConnections: Int

    public init(softLimit: UInt64?, maximumConnections: Int) {
        self.softLimit = softLimit
        self.maximumConnections = maximumConnections
    }

    /// Descriptors opened for a moment besides those open at start: the state file and its staging file, a config
    /// or Langfuse file, HTTP connections to a config source and Langfuse, metrics scrapes, a refused connection
    /// being answered.
    public static let margin = 32

    /// The budget for `connections` connections when `reserve` descriptors are needed besides them.
    /// - Parameters:
    ///   - soft: the current soft limit; `hard`: the hard limit (`RLIM_INFINITY` is `UInt64.max`).
    /// - Returns: the soft limit to set (nil to keep it) and the connection limit, at least 1.
    public static func plan(connections: Int, reserve: Int, soft: UInt64, hard: UInt64) -> DescriptorBudget {
        let needed = UInt64(connections) + UInt64(reserve)
        guard needed > soft else { return DescriptorBudget(softLimit: nil, maximumConnections: connections) }
        let reachable = max(soft, min(needed, hard))
        let fitting = reachable > UInt64(reserve) ? Int(clamping: reachable - UInt64(reserve)) : 1
        return DescriptorBudget(
            softLimit: reachable > soft ? reachable : nil, maximumConnections: max(1, min(connections, fitting)))
    }

    /// The descriptor limits of this process: (soft, hard).
    static func currentLimits() -> (soft: UInt64, hard: UInt64)? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return nil }
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }

    /// Sets the soft descriptor limit; false when the system refuses (a seccomp filter such as systemd's
    /// `SystemCallFilter=~@resources` answers EPERM).
    static func setSoftLimit(_ soft: UInt64, hard: UInt64) -> Bool {
        var limit = rlimit(rlim_cur: rlim_t(soft), rlim_max: rlim_t(hard))
        return setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0
    }

    /// How many descriptors this process has open (from `/proc/self/fd`), or nil when that cannot be listed.
    static func openDescriptors() -> Int? {
        guard let listing = opendir("/proc/self/fd") else { return nil }
        defer { closedir(listing) }
        var count = 0
        while let entry = readdir(listing) {
            if entry.pointee.d_name.0 != 46 { count += 1 }  // not "." or ".."
        }
        return count - 1  // the listing's own descriptor
    }
}
