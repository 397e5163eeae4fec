// The parts of libsystemd (pkg-config `libsystemd`, Debian's `libsystemd-dev`) that variantd uses.
//
// Swift cannot call C variadic functions, so the daemon sends journal entries with `sd_journal_sendv` (an array of
// iovecs, one `FIELD=value` each) instead of `sd_journal_send`, and formats notification strings itself instead of
// calling `sd_notifyf`. The inline functions below give Swift the macros it cannot import.
#ifndef VARIANTD_CSYSTEMD_SHIM_H
#define VARIANTD_CSYSTEMD_SHIM_H

#include <sys/socket.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/// The first descriptor passed by socket activation (`SD_LISTEN_FDS_START`, 3).
static inline int csystemd_listen_fds_start(void) { return SD_LISTEN_FDS_START; }

/// `sd_is_socket_unix` for a listening stream socket with any path (or an abstract address).
static inline int csystemd_is_listening_unix_stream(int fd) {
    return sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
}

#endif
