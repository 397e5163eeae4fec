import ArgumentParser
import VariantClient
import VariantCore

/// Options shared by every command that talks to the daemon.
struct ConnectionOptions: ParsableArguments {
    @Option(help: "The daemon's socket (default: $VARIANTD_SOCKET, else /run/variantd/variantd.sock).")
    var socket: String = VariantConnection.defaultSocketPath

    @Flag(help: "Print the daemon's JSON answer as is.")
    var json = false

    @Option(help: "Seconds to wait for the daemon.")
    var timeout: Double = 5

    func validate() throws {
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number of seconds") }
    }

    /// Sends one request and returns the parsed answer, or exits: 69 when the daemon cannot be reached (saying
    /// where it looked and what to do), 1 with the daemon's error code and a hint for the usual ones, 70 when the
    /// answer is not a JSON object.
    func send(_ fields: [(String, JSONValue)]) throws -> (line: String, answer: JSONObject) {
        let line: String
        do {
            let connection = try VariantConnection(socketPath: socket, timeoutSeconds: timeout)
            line = try connection.request(VariantConnection.requestLine(fields))
        } catch {
            printError("variantctl: \(error.description)")
            throw ExitCode(ExitCodes.unavailable)
        }
        guard case .object(let answer)? = try? JSONParser.parse(Array(line.utf8)) else {
            printError("variantctl: the daemon answered something that is not a JSON object: \(line)")
            throw ExitCode(ExitCodes.software)
        }
        if answer["ok"] != .bool(true) {
            if json {
                print(line)
            } else {
                let error = answer["error"]?.objectValue
                let code = error?["code"]?.stringValue ?? "unknown"
                printError("variantctl: \(code): \(error?["message"]?.stringValue ?? line)")
                if let hint = Self.hint(forCode: code, socket: socket) { printError(hint) }
            }
            throw ExitCode(ExitCodes.requestFailed)
        }
        return (line, answer)
    }

    /// What an operator can do about an error answer, for the codes where that is not obvious.
    static func hint(forCode code: String, socket: String) -> String? {
        switch code {
        case "forbidden":
            return """
                Admin ops (disable, enable, reload) are allowed to root, the daemon's own user and members of the \
                daemon's --admin-group. Run with sudo (or as the daemon's user), or ask for membership of the admin \
                group (`sudo usermod -aG GROUP $USER`, then log in again).
                """
        case "no_config":
            return "The daemon has no valid configuration yet: `variantctl status` shows the last load error."
        case "disabled_by_config":
            return """
                The configuration document every host follows disables this treatment (its variant's "disabled", \
                often written by variantd-judge). Change the document at its source to serve it again.
                """
        case "state_not_durable":
            return """
                The change is in effect, but the daemon cannot write its state file, so a restart would undo it. \
                Make the state directory (--state-dir, /var/lib/variantd) writable, then repeat the command; \
                `variantctl health` shows state_error until a write succeeds.
                """
        case "unavailable":
            return "The daemon cannot do this now; `variantctl status` shows its configuration source."
        default:
            return nil
        }
    }
}
