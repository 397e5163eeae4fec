import CSystemd
import Glibc

/// systemd socket activation (`sd_listen_fds(3)`): the listening socket a `.socket` unit passed, if any.
public enum SocketActivation {
    /// The descriptor passed with `LISTEN_FDS`/`LISTEN_PID`, or nil when the daemon was not socket-activated.
    ///
    /// Unsets the `LISTEN_*` variables (so nothing the daemon might start inherits them) and marks the
    /// descriptor close-on-exec.
    /// - Throws: `SystemdError` `listen_fds_invalid` when the variables cannot be parsed, `listen_fds_count` when
    ///   more than one descriptor was passed, `listen_fd_not_unix_stream` when the descriptor is not a listening
    ///   Unix stream socket (`ListenStream=` with a path in the `.socket` unit).
    public static func inheritedListener() throws(SystemdError) -> CInt? {
        let count = sd_listen_fds(1)
        if count < 0 {
            throw SystemdError(
                .listenFDsInvalid, "LISTEN_FDS is set but unusable: \(String(cString: strerror(-count)))")
        }
        if count == 0 { return nil }
        guard count == 1 else {
            throw SystemdError(
                .listenFDsCount,
                "socket activation passed \(count) descriptors; variantd serves one socket (one ListenStream= in variantd.socket)"
            )
        }
        let descriptor = csystemd_listen_fds_start()
        let check = csystemd_is_listening_unix_stream(descriptor)
        guard check > 0 else {
            let detail = check < 0 ? String(cString: strerror(-check)) : "another kind of socket or file"
            throw SystemdError(
                .listenFDNotUnixStream,
                "the descriptor passed by socket activation (fd \(descriptor)) is not a listening Unix stream socket: \(detail); use ListenStream=/path in the .socket unit"
            )
        }
        return descriptor
    }
}
