/// A systemd integration problem found at start-up, with a stable code (listed in `systemd/README.md`).
public struct SystemdError: Error, CustomStringConvertible, Sendable {
    /// A stable snake_case code; new codes can be added without breaking callers.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private enum Value: String {
            case listenFDsInvalid = "listen_fds_invalid"
            case listenFDsCount = "listen_fds_count"
            case listenFDNotUnixStream = "listen_fd_not_unix_stream"
        }

        private let value: Value
        private init(_ value: Value) { self.value = value }

        /// `LISTEN_FDS`/`LISTEN_PID` could not be read (`sd_listen_fds` failed).
        public static let listenFDsInvalid = Code(.listenFDsInvalid)
        /// Socket activation passed more than the one socket variantd serves on.
        public static let listenFDsCount = Code(.listenFDsCount)
        /// The passed descriptor is not a listening Unix stream socket.
        public static let listenFDNotUnixStream = Code(.listenFDNotUnixStream)

        public var description: String { value.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }
}
