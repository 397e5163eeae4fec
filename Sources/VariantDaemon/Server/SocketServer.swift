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
        /// Connections beyond this are answered with `too_many_connections` and closed.
        public var maximumConnections: Int = 1024

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
    private let openConnections = Atomic<Int>(0)
    private let onListening: @Sendable () -> Void
    private let contextForPeer: @Sendable (PeerCredentials?) -> RequestContext

    /// - Parameters:
    ///   - contextForPeer: the request context of a new connection, from its peer's credentials (nil when the
    ///     kernel could not tell them).
    ///   - onListening: called once the socket is bound and its mode set (for readiness notification).
    public init(
        configuration: Configuration, store: ServingStateStore, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        contextForPeer: @escaping @Sendable (PeerCredentials?) -> RequestContext,
        onListening: @escaping @Sendable () -> Void = {}
    ) {
        self.configuration = configuration
        self.store = store
        self.logger = logger
        self.group = group
        self.contextForPeer = contextForPeer
        self.onListening = onListening
    }

    public func run() async throws {
        let quiesce = ServerQuiescingHelper(group: group)
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 512)
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                }
            }
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
            logger.info("server.listening", metadata: ["socket.fd": "\(descriptor)", "socket.activated": "true"])
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
        logger.info("server.stopped", metadata: ["socket": "\(socketPath ?? "inherited")"])
    }

    /// Binds a new socket file at `path` with permission bits `mode`.
    private func bind(_ bootstrap: ServerBootstrap, path: String, mode: mode_t) async throws -> any Channel {
        // Create the socket file with its final mode, so no client ever sees it with the umask's mode; the
        // daemon creates no other file while binding, so changing the process-wide umask briefly is safe.
        let previousUmask = umask(~mode & 0o777)
        defer { _ = umask(previousUmask) }
        let channel = try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true).get()
        _ = umask(previousUmask)
        guard chmod(path, mode) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            unlink(path)
            throw SocketSetupError(description: "cannot set mode of \(path): \(reason)")
        }
        logger.info("server.listening", metadata: ["socket": "\(path)", "socket.mode": "\(String(mode, radix: 8))"])
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
        let count = openConnections.add(1, ordering: .relaxed).newValue
        channel.closeFuture.whenComplete { [self] _ in
            self.openConnections.subtract(1, ordering: .relaxed)
        }
        let handlers = channel.pipeline.syncOperations
        guard count <= configuration.maximumConnections else {
            logger.warning("connection.refused", metadata: ["connections.limit": "\(configuration.maximumConnections)"])
            try handlers.addHandler(ConnectionRefusalHandler(limit: configuration.maximumConnections))
            return
        }
        try handlers.addHandler(BackPressureHandler())
        try handlers.addHandler(
            RequestLineHandler(
                store: store, context: contextForPeer(peer), maximumLineBytes: configuration.maximumLineBytes,
                logger: logger))
    }
}

struct SocketSetupError: Error, CustomStringConvertible {
    var description: String
}
