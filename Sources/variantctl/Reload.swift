import ArgumentParser
import VariantCore

/// `variantctl reload`: the daemon's config source polls now instead of at its next check.
struct Reload: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Make the daemon re-read its configuration now (then see `variantctl status`).",
        discussion: "An admin op: root, the daemon's user or a member of its --admin-group.")

    @OptionGroup var connection: ConnectionOptions

    func run() throws {
        let (line, _) = try connection.send([("op", .string("reload"))])
        if connection.json {
            print(line)
        } else {
            print("reload requested: the configuration source is read now; `variantctl status` shows the result")
        }
    }
}
