import Glibc
import Logging
import NIOCore
import NIOExtras
import NIOPosix
import ServiceLifecycle
import Synchronization
import VariantCore

/// The Unix-socket NDJSON server: binds the socket, answers request lines, and on graceful shutdown stops
/// accepting, answers every line already read, and removes the socket file.
public final class SocketServer: Service, Sendable {
    public struct Configuration: Sendable {
        /// Where connections come from.
        public enum Listener: Sendable, Equatable {
            /// Bind a socket file (replacing a stale one) with these permission bits, and remove it on exit.
            case path(String, mode: mode_t)
            /// Serve on a listening Unix stream socket inherited from systemd's socket activation; systemd owns
            /// the socket file, so it is neither created, chmod-ed nor removed.
            case inheritedDescriptor(CInt)
        }

        public var listener: Listener
        /// The longest request line; a longer one is answered with `line_too_long` and the connection closed.
        public var maximumLineBytes: Int = 65536
        /// Connections beyond this are answered with `too_many_connections` and closed; one more is kept for admin
        /// peers. Lowered at start when the descriptor limit leaves no room for it (`DescriptorBudget`).
        public var maximumConnections: Int = 1024
        /// A connection with nothing read or written for this long is closed; nil keeps idle connections open.
        public var idleTimeout: Duration? = .seconds(300)

        public init(listener: Listener) {
            self.listener = listener
        }

        public init(socketPath: String, socketMode: mode_t = 0o660) {
            self.listener = .path(socketPath, mode: socketMode)
        }
    }

    private let configuration: Configuration
    private let store: ServingStateStore
    private let logger: Logger
    private let group: any EventLoopGroup
    /// Which connections are served (the limit is set again at start, by the descriptor budget).
    private let admission: Mutex<ConnectionAdmission>
    private let onListening: @Sendable () -> Void
    private let contextForPeer: @Sendable (PeerCredentials?) -> RequestContext
    private let metrics: DaemonMetrics?

    /// - Parameters:
    ///   - contextForPeer: the request context of a new connection, from its peer's credentials (nil when the
    ///     kernel could not tell them).
    ///   - metrics: where requests and connections are counted; nil counts nothing.
    ///   - onListening: called once the socket is bound and its mode set (for readiness notification).
    public init(
        configuration: Configuration, store: ServingStateStore, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        metrics: DaemonMetrics? = nil,
        contextForPeer: @escaping @Sendable (PeerCredentials?) -> RequestContext,
        onListening: @escaping @Sendable () -> Void = {}
    ) {
        self.configuration = configuration
        self.admission = Mutex(ConnectionAdmission(limit: configuration.maximumConnections))
        self.store = store
        self.logger = logger
        self.group = group
        self.metrics = metrics
        self.contextForPeer = contextForPeer
        self.onListening = onListening
    }

    public func run() async throws {
        applyDescriptorBudget()
        let quiesce = ServerQuiescingHelper(group: group)
        let logger = logger
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let handlers = channel.pipeline.syncOperations
                    try handlers.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                    // Out of descriptors, wait before accepting again instead of retrying at once (a spinning CPU).
                    try handlers.addHandler(AcceptBackoff(logger: logger))
                }
            }
            // A client that half-closes still gets the answers to every line it sent (RequestLineHandler).
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { [self] channel in
                Self.peerCredentials(of: channel).flatMapThrowing { credentials in
                    try self.initialize(channel, peer: credentials)
                }
            }
        let channel: any Channel
        let socketPath: String?
        switch configuration.listener {
        case .path(let path, let mode):
            channel = try await bind(bootstrap, path: path, mode: mode)
            socketPath = path
        case .inheritedDescriptor(let descriptor):
            channel = try await bootstrap.withBoundSocket(descriptor).get()
            socketPath = nil
            logger.log(.info, .serverListening, metadata: [.socketFD: "\(descriptor)", .socketActivated: "true"])
        }
        defer { if let socketPath { unlink(socketPath) } }
        onListening()

        let drained = group.next().makePromise(of: Void.self)
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                try? await channel.closeFuture.get()
            } onGracefulShutdown: {
                quiesce.initiateShutdown(promise: drained)
            }
        } onCancel: {
            channel.close(promise: nil)
        }
        if !Task.isCancelled {
            try? await drained.futureResult.get()
        } else {
            drained.succeed()
        }
        logger.log(.info, .serverStopped, metadata: [.socket: "\(socketPath ?? "inherited")"])
    }

    /// Keeps the connection limit (and the admin slot) below the descriptor limit: raises the soft limit up to the
    /// hard one when it is too low, else lowers the connection limit; logs either once.
    private func applyDescriptorBudget() {
        guard let (soft, hard) = DescriptorBudget.currentLimits() else { return }
        let reserve = (DescriptorBudget.openDescriptors() ?? 64) + DescriptorBudget.margin + 1  // + the admin slot
        let asked = configuration.maximumConnections
        var budget = DescriptorBudget.plan(connections: asked, reserve: reserve, soft: soft, hard: hard)
        if let raised = budget.softLimit {
            if DescriptorBudget.setSoftLimit(raised, hard: hard) {
                logger.log(
                    .info, .descriptorsRaised, metadata: [.descriptorsSoftLimit: "\(raised)", .descriptorsWas: "\(soft)"])
            } else {
                // Not allowed here (systemd's SystemCallFilter=~@resources): make do with the soft limit.
                budget = DescriptorBudget.plan(connections: asked, reserve: reserve, soft: soft, hard: soft)
            }
        }
        if budget.maximumConnections < asked {
            logger.log(
                .warning, .connectionLimitLowered, "the descriptor limit leaves room for fewer connections than --max-connections; raise LimitNOFILE (ulimit -n)",
                metadata: [
                    .connectionsLimit: "\(budget.maximumConnections)", .connectionsAsked: "\(asked)",
                    .descriptorsSoftLimit: "\(budget.softLimit ?? soft)", .descriptorsHardLimit: "\(hard)",
                    .descriptorsReserved: "\(reserve)",
                ])
        }
        admission.withLock { $0.limit = budget.maximumConnections }
    }

    /// Binds a new socket file at `path` with permission bits `mode`.
    ///
    /// The socket is bound in a private directory beside `path`, given its mode there, and renamed into place, so
    /// no client ever sees it with another mode, and the process-wide umask (on which every other thread's new
    /// files and directories depend, the state directory among them) is never touched. A live socket at `path` (a
    /// daemon answering there) is never replaced; a stale file with no listener is.
    /// - Throws: `SocketSetupError` naming the path and what to do.
    private func bind(_ bootstrap: ServerBootstrap, path: String, mode: mode_t) async throws -> any Channel {
        if SocketSetupError.hasListener(at: path) {
            throw SocketSetupError(
                description: "another process is listening on \(path); stop it first, or give this daemon another --socket")
        }
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        var template = Array(((directory.isEmpty ? "" : directory) + "/.variantd-bind-XXXXXX").utf8CString)
        guard mkdtemp(&template) != nil else {
            throw SocketSetupError(
                description: "cannot bind \(path): cannot create a directory in \(directory.isEmpty ? "/" : directory) (\(String(cString: strerror(errno)))); create the directory, or give another --socket")
        }
        let staging = String(cString: template)
        defer { rmdir(staging) }
        let channel = try await bootstrap.bind(unixDomainSocketPath: staging + "/s", cleanupExistingSocketFile: false).get()
        guard chmod(staging + "/s", mode) == 0, rename(staging + "/s", path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            unlink(staging + "/s")
            throw SocketSetupError(description: "cannot put the socket at \(path): \(reason)")
        }
        logger.log(.info, .serverListening, metadata: [.socket: "\(path)", .socketMode: "\(String(mode, radix: 8))"])
        return channel
    }

    /// The connected process's pid, uid and gid (`SO_PEERCRED`), or nil if the kernel would not say.
    private static func peerCredentials(of channel: any Channel) -> EventLoopFuture<PeerCredentials?> {
        guard let provider = channel as? any SocketOptionProvider else { return channel.eventLoop.makeSucceededFuture(nil) }
        let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET), name: NIOBSDSocket.Option(rawValue: PeerCredentials.socketOption))
        return credentials.map { Optional($0) }.recover { _ in nil }
    }

    private func initialize(_ channel: any Channel, peer: PeerCredentials?) throws {
        let context = contextForPeer(peer)
        let now = ContinuousClock.now
        var decision = admission.withLock { $0.admit(isAdmin: nil, now: now) }
        if decision == .askWhetherAdmin {
            let isAdmin = context.caller.mayAdminister  // may read the peer's groups: outside the lock
            decision = admission.withLock { $0.admit(isAdmin: isAdmin, now: now) }
        }
        let handlers = channel.pipeline.syncOperations
        let limit = admission.withLock { $0.limit }
        switch decision {
        case .refuse(let startsEpisode, let endedEpisode):
            metrics?.connectionRefused()
            if let endedEpisode {
                logger.log(.notice, .connectionRefusalsEnded, metadata: [.connectionsRefused: "\(endedEpisode)"])
            }
            if startsEpisode {
                logger.log(
                    .warning, .connectionRefused, "the connection limit is reached; new connections are refused (counted, logged again when it ends)",
                    metadata: [.connectionsLimit: "\(limit)"])
            }
            try handlers.addHandler(ConnectionRefusalHandler(limit: limit))
            return
        case .askWhetherAdmin:  // answered above; refuse rather than serve over the limit
            try handlers.addHandler(ConnectionRefusalHandler(limit: limit))
            return
        case .serve(let endedEpisode):
            if let endedEpisode {
                logger.log(.notice, .connectionRefusalsEnded, metadata: [.connectionsRefused: "\(endedEpisode)"])
            }
        case .serveInAdminSlot:
            logger.log(.info, .connectionAdminSlot, metadata: [.peer: "\(context.caller)"])
        }
        channel.closeFuture.whenComplete { [self] _ in
            self.admission.withLock { $0.closed() }
        }
        if let metrics {
            metrics.connectionOpened()
            channel.closeFuture.whenComplete { _ in metrics.connectionClosed() }
        }
        // One handler: framing, answering, the idle timeout, back-pressure and closing (ConnectionStateMachine).
        try handlers.addHandler(
            RequestLineHandler(
                store: store, context: context, maximumLineBytes: configuration.maximumLineBytes,
                logger: logger, idleTimeout: configuration.idleTimeout, metrics: metrics))
    }
}

struct SocketSetupError: Error, CustomStringConvertible {
    var description: String

    /// Whether a process accepts connections on the Unix socket at `path` (a connect succeeds or would wait);
    /// false for a missing file, a stale socket file (refused) or anything that cannot be connected to.
    static func hasListener(at path: String) -> Bool {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return false }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        return result == 0 || errno == EAGAIN || errno == EINPROGRESS
    }
}
