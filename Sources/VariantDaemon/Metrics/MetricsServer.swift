import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// The metrics endpoint (`--metrics-address`): HTTP/1.1 on a TCP listener, serving `GET /metrics` (and `HEAD`) in
/// the Prometheus text format; any other path is 404, any other method on `/metrics` 405.
///
/// Each connection is a task of its own on the cooperative pool (an `NIOAsyncChannel`), which renders the body:
/// a scrape never runs on the event loops that answer the Unix socket. On graceful shutdown the listener closes
/// and each connection stops reading, answers the request in flight and closes; it does not hold up readiness,
/// which depends on the Unix socket only.
public final class MetricsServer: Service, Sendable {
    public struct Configuration: Sendable {
        public var address: Address
        /// How long a connection may take to take its last answer after graceful shutdown began.
        public var stopGracePeriod: TimeAmount = .seconds(5)

        public init(address: Address) {
            self.address = address
        }
    }

    /// A `HOST:PORT` to listen on: an IPv4 address, `[IPv6]` or a host name, and a port (0: any free port).
    public struct Address: Sendable, Equatable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `HOST:PORT` (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`).
        /// - Throws: `MetricsServerError` saying what is wrong with `text`.
        public init(parsing text: String) throws(MetricsServerError) {
            guard let colon = text.lastIndex(of: ":") else {
                throw MetricsServerError("'\(text)' has no port; give HOST:PORT, such as 127.0.0.1:9464")
            }
            var host = String(text[..<colon])
            let portText = text[text.index(after: colon)...]
            if host.hasPrefix("["), host.hasSuffix("]") {
                host = String(host.dropFirst().dropLast())
            } else if host.contains(":") {
                throw MetricsServerError("'\(text)': write an IPv6 address in brackets, such as [::1]:9464")
            }
            guard !host.isEmpty else {
                throw MetricsServerError("'\(text)' has no host; give HOST:PORT, such as 127.0.0.1:9464")
            }
            guard let port = Int(portText), (0...65535).contains(port) else {
                throw MetricsServerError("'\(text)' has no valid port (0-65535) after the last ':'")
            }
            self.init(host: host, port: port)
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        /// The socket address, resolving a host name (at start-up only: this blocks).
        /// - Throws: `MetricsServerError` when the host is neither an address nor a name that resolves.
        public func resolved() throws(MetricsServerError) -> SocketAddress {
            do {
                return try SocketAddress.makeAddressResolvingHost(host, port: port)
            } catch {
                throw MetricsServerError("cannot resolve the host '\(host)' of \(self): \(error)")
            }
        }
    }

    private typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    private let configuration: Configuration
    private let metrics: DaemonMetrics
    private let logger: Logger
    private let group: any EventLoopGroup
    private let onListening: @Sendable (SocketAddress) -> Void

    /// - Parameter onListening: called with the bound address (its port is the one chosen for port 0).
    public init(
        configuration: Configuration, metrics: DaemonMetrics, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        onListening: @escaping @Sendable (SocketAddress) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.group = group
        self.onListening = onListening
    }

    /// - Throws: `MetricsServerError` when the address cannot be resolved or bound (in use, not local).
    public func run() async throws {
        let address = configuration.address
        let server: NIOAsyncChannel<Connection, Never>
        do {
            server = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(to: try address.resolved()) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
        } catch let error as MetricsServerError {
            throw error
        } catch {
            throw MetricsServerError("cannot listen on \(address): \(error)")
        }
        let bound = server.channel.localAddress
        var metadata: [LogMetadataKey: Logger.MetadataValue] = [.metricsAddress: "\(bound.map(Self.describe) ?? address.description)"]
        metadata[.metricsPath] = "/metrics"
        logger.log(.info, .metricsListening, metadata: metadata)
        if let bound { onListening(bound) }

        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { connections in
                do {
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            connections.addTask { await self.serve(connection) }
                        }
                    }
                } catch {
                    logger.log(.debug, .metricsAcceptFailed, metadata: [.error: "\(error)"])
                }
            }
        } onGracefulShutdown: {
            server.channel.close(promise: nil)
        }
        logger.log(.info, .metricsStopped)
    }

    /// `127.0.0.1:9464`, `[::1]:9464`.
    static func describe(_ address: SocketAddress) -> String {
        guard let ip = address.ipAddress, let port = address.port else { return "\(address)" }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }

    /// Answers one connection's requests in order until it closes, asks to close, or the daemon stops.
    private func serve(_ connection: Connection) async {
        let channel = connection.channel
        let gracePeriod = configuration.stopGracePeriod
        await withGracefulShutdownHandler {
            do {
                try await connection.executeThenClose { inbound, outbound in
                    var head: HTTPRequestHead?
                    for try await part in inbound {
                        switch part {
                        case .head(let requestHead):
                            head = requestHead
                        case .body:
                            continue
                        case .end:
                            guard let request = head else { continue }
                            head = nil
                            let response = self.response(to: request)
                            try await outbound.write(.head(response.head))
                            if let body = response.body { try await outbound.write(.body(.byteBuffer(body))) }
                            try await outbound.write(.end(nil))
                            if !request.isKeepAlive { return }
                        }
                    }
                }
            } catch {
                logger.log(.debug, .metricsConnectionError, metadata: [.error: "\(error)"])
            }
        } onGracefulShutdown: {
            // Stop reading: the request in flight is answered, then the connection closes. A client that does not
            // read its answer is cut off after the grace period.
            channel.close(mode: .input).whenFailure { _ in channel.close(promise: nil) }
            channel.eventLoop.scheduleTask(in: gracePeriod) { channel.close(promise: nil) }
        }
    }

    /// The answer to one request; the body is rendered here, on the connection's task.
    private func response(to request: HTTPRequestHead) -> (head: HTTPResponseHead, body: ByteBuffer?) {
        var headers = HTTPHeaders()
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let status: HTTPResponseStatus
        let body: ByteBuffer
        if path != "/metrics" {
            status = .notFound
            body = ByteBuffer(string: "not found; the metrics are at /metrics\n")
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        } else if request.method != .GET, request.method != .HEAD {
            status = .methodNotAllowed
            body = ByteBuffer(string: "only GET and HEAD are allowed\n")
            headers.add(name: "Allow", value: "GET, HEAD")
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        } else {
            status = .ok
            body = metrics.render()
            headers.add(name: "Content-Type", value: Self.contentType)
        }
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        if !request.isKeepAlive, request.version.major == 1, request.version.minor >= 1 {
            headers.add(name: "Connection", value: "close")
        } else if request.isKeepAlive, request.version == .http1_0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        return (HTTPResponseHead(version: request.version, status: status, headers: headers),
                request.method == .HEAD ? nil : body)
    }

    /// The Prometheus text exposition format, version 0.0.4.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"
}

/// Why the metrics endpoint cannot start: a bad `--metrics-address`, or one that cannot be bound.
public struct MetricsServerError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) {
        self.description = description
    }
}
