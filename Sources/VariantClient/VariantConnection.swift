import Glibc
import VariantCore

/// A blocking connection to variantd's Unix socket that sends request lines and reads the answers, in order.
///
/// The transport under `variantctl` and `VariantClient` (which adds the fallback, the kept connection and the
/// record buffer). Not thread-safe: one user at a time.
public final class VariantConnection {
    /// The socket path used when none is given: `$VARIANTD_SOCKET`, else `/run/variantd/variantd.sock`.
    public static var defaultSocketPath: String {
        if let path = getenv("VARIANTD_SOCKET") { return String(cString: path) }
        return "/run/variantd/variantd.sock"
    }

    /// Why talking to the daemon failed, with what an operator needs to fix it.
    public struct Failure: Error, CustomStringConvertible {
        public enum Kind: Sendable { case socketMissing, permissionDenied, refused, timedOut, closed, io }
        public var kind: Kind
        public var description: String
    }

    public let socketPath: String
    /// The socket; `PipelinedConnection` polls and reads it itself.
    let descriptor: Int32
    private var buffered: [UInt8] = []
    /// How long each read or write may block. A read blocks in the kernel, bounded by `SO_RCVTIMEO`; a write that
    /// finds the socket full waits with `poll`.
    private var timeout: Double
    /// The least and the most time left that the `SO_RCVTIMEO` set now may serve for: `VariantClient` sets a
    /// timeout for every request (what is left of its deadline), and a system call to change the socket's each
    /// time cost more than the `poll` it replaces. Within 1 ms (at most 5% of it) longer than asked, it stays.
    private var armed: ClosedRange<Double> = 0...0
    /// One read's worth of bytes, kept from call to call.
    private var chunk = [UInt8](repeating: 0, count: 65536)

    /// Connects, failing with a message that says where it looked and what to do.
    /// - Parameter timeoutSeconds: how long a read or a write may block.
    public init(socketPath: String = VariantConnection.defaultSocketPath, timeoutSeconds: Double = 5) throws(Failure) {
        self.socketPath = socketPath
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard pathBytes.count < capacity else {
            throw Failure(kind: .io, description: "socket path \(socketPath) is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw Failure(kind: .io, description: "socket(): \(String(cString: strerror(errno)))") }
        let clamped = max(timeoutSeconds, 0.000_001)  // a zero timeout would mean "wait forever"
        self.timeout = clamped
        var timeout = Self.timeval(seconds: clamped)
        // SO_SNDTIMEO also bounds connect(2) on a Unix socket whose backlog is full.
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        self.armed = Self.servedRange(clamped)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let code = errno
            close(descriptor)
            switch code {
            case ENOENT:
                throw Failure(
                    kind: .socketMissing,
                    description: "no variantd socket at \(socketPath). Is the daemon running? Start it with `systemctl start variantd.socket` or `variantd --config FILE --socket \(socketPath)`, or point at another socket with --socket or VARIANTD_SOCKET.")
            case EACCES, EPERM:
                throw Failure(kind: .permissionDenied, description: Self.permissionAdvice(socketPath: socketPath))
            case ECONNREFUSED:
                throw Failure(kind: .refused, description: "\(socketPath) exists but nothing accepts connections on it: the daemon is not running (a stale socket file).")
            default:
                throw Failure(kind: .io, description: "cannot connect to \(socketPath): \(String(cString: strerror(code)))")
            }
        }
        self.descriptor = descriptor
    }

    deinit {
        close(descriptor)
    }

    /// Sets how long each following read or write may block (at least a microsecond: zero would mean forever).
    /// The socket's receive timeout is changed only when the one set does not serve (see `armed`).
    public func setTimeout(seconds: Double) {
        timeout = max(seconds, 0.000_001)
        guard !armed.contains(timeout) else { return }
        var value = Self.timeval(seconds: timeout)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &value, socklen_t(MemoryLayout<timeval>.size))
        armed = Self.servedRange(timeout)
    }

    /// The times left that a receive timeout of `seconds` serves: those it exceeds by at most 1 ms or 5%.
    private static func servedRange(_ seconds: Double) -> ClosedRange<Double> {
        (seconds - min(0.001, seconds * 0.05))...seconds
    }

    private static func timeval(seconds: Double) -> Glibc.timeval {
        var value = Glibc.timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
        if value.tv_sec == 0, value.tv_usec == 0 { value.tv_usec = 1 }
        return value
    }

    /// Waits until the socket is ready for `events` (`POLLIN`, `POLLOUT`), for at most the timeout.
    private func wait(for events: Int32, _ operation: String) throws(Failure) {
        var ready = pollfd(fd: descriptor, events: Int16(events), revents: 0)
        let milliseconds = Int32(min((timeout * 1000).rounded(.up), Double(Int32.max)))
        while true {
            let result = poll(&ready, 1, milliseconds)
            if result > 0 { return }
            if result == 0 {
                throw Failure(kind: .timedOut, description: "the daemon did not answer in time (\(operation) on \(socketPath))")
            }
            if errno != EINTR { throw ioFailure("poll") }
        }
    }

    /// Sends one request line (a newline is added) and returns the answer line without its newline.
    public func request(_ line: String) throws(Failure) -> String {
        try send(line)
        return try receiveLine()
    }

    public func send(_ line: String) throws(Failure) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        try send(bytes: bytes)
    }

    /// Sends bytes as they are (request lines with their newlines).
    func send(bytes: [UInt8]) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            // MSG_NOSIGNAL: a daemon that went away is an error to report, not a SIGPIPE that kills the caller.
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    try wait(for: Int32(POLLOUT), "write")
                    continue
                }
                throw ioFailure("write")
            }
            offset += written
        }
    }

    public func receiveLine() throws(Failure) -> String {
        String(decoding: try receiveLineBytes(), as: UTF8.self)
    }

    /// The next answer line's bytes, without its newline.
    func receiveLineBytes() throws(Failure) -> [UInt8] {
        var searched = 0
        while true {
            if let newline = Self.newline(in: buffered, from: searched) {
                let line = Array(buffered[..<newline])
                buffered.removeSubrange(...newline)
                return line
            }
            searched = buffered.count
            // A blocking read, bounded by SO_RCVTIMEO: one system call where `poll` and `read` were two.
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw ioFailure("read")  // EAGAIN: the receive timeout passed
            }
            if count == 0 { throw Failure(kind: .closed, description: "the daemon closed the connection") }
            if buffered.isEmpty, let newline = Self.newline(in: chunk, from: 0, to: count) {
                // The usual case, an answer read whole: copied once, into its line, not through `buffered`.
                if newline + 1 < count { buffered.append(contentsOf: chunk[(newline + 1)..<count]) }
                return Array(chunk[..<newline])
            }
            buffered.append(contentsOf: chunk[0..<count])
        }
    }

    /// The index of the first newline in `bytes` from `start` up to `end` (all of them without it; `memchr`: a
    /// render answer is kilobytes).
    private static func newline(in bytes: [UInt8], from start: Int, to end: Int? = nil) -> Int? {
        let end = end ?? bytes.count
        guard start < end else { return nil }
        return bytes.withUnsafeBufferPointer { buffer in
            memchr(buffer.baseAddress! + start, Int32(UInt8(ascii: "\n")), end - start).map { found in
                UnsafeRawPointer(buffer.baseAddress!).distance(to: UnsafeRawPointer(found))
            }
        }
    }

    private func ioFailure(_ operation: String) -> Failure {
        if errno == EAGAIN || errno == EWOULDBLOCK {
            return Failure(kind: .timedOut, description: "the daemon did not answer in time (\(operation) on \(socketPath))")
        }
        return Failure(kind: .io, description: "\(operation) on \(socketPath): \(String(cString: strerror(errno)))")
    }
}

extension VariantConnection {
    /// Why connecting was refused and what to do: which group owns the socket (from `stat` and `getgrgid`) and how
    /// to join it, or which folder on the way cannot be entered.
    public static func permissionAdvice(socketPath: String) -> String {
        var info = stat()
        guard stat(socketPath, &info) == 0 else {
            let folder = socketPath.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
            return "permission denied on \(socketPath): the folder \(folder.isEmpty ? "/" : folder) cannot be entered by this user (\(String(cString: strerror(errno)))). Ask for access to it, or run as the daemon's user."
        }
        let mode = String(info.st_mode & 0o777, radix: 8)
        let group = groupName(info.st_gid)
        let owner = userName(info.st_uid)
        return "permission denied on \(socketPath) (owner \(owner), group \(group), mode 0\(mode)). Join the group \(group): `sudo usermod -aG \(group) $USER`, then log in again (or run `newgrp \(group)`)."
    }

    static func groupName(_ id: gid_t) -> String {
        guard let entry = getgrgid(id), let name = entry.pointee.gr_name else { return "\(id)" }
        return String(cString: name)
    }

    static func userName(_ id: uid_t) -> String {
        guard let entry = getpwuid(id), let name = entry.pointee.pw_name else { return "\(id)" }
        return String(cString: name)
    }

    /// Builds a request line from fields, in the given order, with JSON escaping.
    public static func requestLine(_ fields: [(String, JSONValue)]) -> String {
        var writer = JSONWriter()
        writer.value(.object(JSONObject(fields.map { (key: $0.0, value: $0.1) })))
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}
