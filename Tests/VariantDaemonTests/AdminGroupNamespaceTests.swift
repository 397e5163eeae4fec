import Foundation
import Testing
import VariantCore

@testable import VariantDaemon

/// Issue 16, "--admin-group under the shipped unit": under `PrivateUsers=yes` only root and the daemon's own user
/// and group are mapped, so an admin group's members got `forbidden` with no hint why. The daemon now says so at
/// start (`admin.group_unmapped`), and the unit's README says to run an admin group without `PrivateUsers=yes`.
@Suite struct AdminGroupNamespaceTests {
    @Test(arguments: [
        ("         0          0 4294967295\n", UInt32(4242), true),  // no user namespace: every group
        ("         0       1000          1\n", 4242, false),  // unshare --map-root-user
        ("         0       1000          1\n", 0, true),
        ("0 0 1\n61184 61184 1\n", 61184, true),  // PrivateUsers=yes: root and the service's group
        ("0 0 1\n61184 61184 1\n", 4242, false),
    ])
    func aGroupIsMappedOnlyInsideARangeOfTheMap(map: String, gid: UInt32, mapped: Bool) {
        #expect(AdminPolicy.isMapped(groupID: gid, gidMap: map) == mapped)
    }

    /// The daemon in a user namespace that maps only root (`unshare --user --map-root-user`, as `PrivateUsers=yes`
    /// maps only root and the service's own ids) with an admin group outside it: logged at start.
    @Test(.enabled(if: userNamespacesWork, "needs unshare(1) and user namespaces"))
    func anAdminGroupTheUserNamespaceDoesNotMapIsReportedAtStart() throws {
        let daemon = try DaemonFixture(
            config: exampleConfig, arguments: ["--admin-group", "4242"],
            launcher: ["/usr/bin/unshare", "--user", "--map-root-user"])
        #expect(daemon.logs.contains("admin.group_unmapped"), "\(daemon.logs)")
        #expect(try daemon.ask(#"{"op":"health"}"#)["ok"] == .bool(true))
        #expect(daemon.stop() == 0)

        // Outside a user namespace the same group is mapped: nothing to report.
        let plain = try DaemonFixture(config: exampleConfig, arguments: ["--admin-group", "4242"])
        #expect(!plain.logs.contains("admin.group_unmapped"))
        #expect(plain.stop() == 0)
    }
}

/// Whether `unshare --user --map-root-user` runs a program here (user namespaces may be disabled).
private let userNamespacesWork: Bool = {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return false }
    return (try? runProgram("/usr/bin/unshare", ["--user", "--map-root-user", "/bin/true"]))?.status == 0
}()
