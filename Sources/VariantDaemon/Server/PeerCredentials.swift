import Glibc
import VariantCore

/// The kernel's `struct ucred` (pid, uid, gid) as `SO_PEERCRED` returns it; Glibc hides `ucred` behind
/// `_GNU_SOURCE`, so this mirrors its layout.
public struct PeerCredentials: Sendable, Equatable {
    public var pid: Int32
    public var uid: UInt32
    public var gid: UInt32

    public init(pid: Int32, uid: UInt32, gid: UInt32) {
        self.pid = pid
        self.uid = uid
        self.gid = gid
    }

    /// `SO_PEERCRED` from `<asm-generic/socket.h>` (the same on every Linux architecture Swift supports).
    static let socketOption: Int32 = 17
}

/// Who may run admin ops (`disable`, `enable`, `reload`): root, the daemon's own user, and members of an
/// optional admin group (primary or supplementary group of the calling process).
public struct AdminPolicy: Sendable {
    /// The daemon's own user id.
    public var daemonUID: UInt32
    /// Members of this group may administer; nil means only root and the daemon's user.
    public var adminGroupID: UInt32?

    public init(daemonUID: UInt32 = getuid(), adminGroupID: UInt32? = nil) {
        self.daemonUID = daemonUID
        self.adminGroupID = adminGroupID
    }

    /// The caller a connection's peer credentials describe; its rights are decided when an admin op asks.
    func caller(_ credentials: PeerCredentials?) -> Caller {
        guard let credentials else { return Caller(pid: nil, uid: nil, gid: nil, mayAdminister: false) }
        return Caller(pid: credentials.pid, uid: credentials.uid, gid: credentials.gid) { [self] in
            mayAdminister(uid: credentials.uid, gid: credentials.gid, pid: credentials.pid)
        }
    }

    func mayAdminister(uid: UInt32, gid: UInt32, pid: Int32) -> Bool {
        if uid == 0 || uid == daemonUID { return true }
        guard let adminGroupID else { return false }
        return gid == adminGroupID || Self.supplementaryGroups(of: pid).contains(adminGroupID)
    }

    /// The supplementary groups of a process, from the `Groups:` line of `/proc/PID/status` (empty if the
    /// process is gone or the file unreadable, which denies rather than allows).
    static func supplementaryGroups(of pid: Int32) -> [UInt32] {
        guard let file = fopen("/proc/\(pid)/status", "r") else { return [] }
        defer { fclose(file) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        defer { free(line) }
        while getline(&line, &capacity, file) > 0 {
            guard let line else { break }
            let text = String(cString: line)
            if text.hasPrefix("Groups:") {
                return text.dropFirst("Groups:".count).split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
                    .compactMap { UInt32($0) }
            }
        }
        return []
    }

    /// Whether the group id `gid` means a group in this process's user namespace (`/proc/self/gid_map`). Under
    /// systemd's `PrivateUsers=yes` only root and the service's own group are mapped: every other group of a peer
    /// reads as the overflow group (65534), so an admin group's members could never be recognised.
    public static func isMapped(groupID gid: UInt32, gidMap: String? = nil) -> Bool {
        guard
            let map = gidMap
                ?? (try? FileIdentity.read(path: "/proc/self/gid_map", maximumBytes: 1 << 16)).map({
                    String(decoding: $0, as: UTF8.self)
                })
        else { return true }
        for line in map.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).compactMap { UInt64($0) }
            guard fields.count == 3 else { continue }
            if UInt64(gid) >= fields[0], UInt64(gid) < fields[0] + fields[2] { return true }
        }
        return false
    }

    /// The group id of a group name or number, or nil if there is no such group.
    public static func groupID(named nameOrNumber: String) -> UInt32? {
        if let number = UInt32(nameOrNumber) { return number }
        guard let entry = getgrnam(nameOrNumber) else { return nil }
        return entry.pointee.gr_gid
    }
}
