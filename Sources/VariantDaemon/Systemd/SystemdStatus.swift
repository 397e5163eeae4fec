import VariantCore

/// The one-line `STATUS=` text `systemctl status variantd` shows, built from what the daemon serves.
public enum SystemdStatus {
    /// The status text for `snapshot` at `now`: the config version and source, how many experiments are running
    /// out of how many, the state file's failure while its writes fail, and the last config error while one stands.
    ///
    /// Parts are separated by "; " in a fixed order, so an operator (or a script reading
    /// `systemctl show -p StatusText variantd`) finds each in the same place; add new parts (disabled treatments,
    /// say) to `parts` here.
    public static func text(for snapshot: ServingSnapshot, now: Timestamp) -> String {
        var parts: [String] = []
        if let config = snapshot.config {
            parts.append("serving config \(config.version) from \(config.source)")
            let experiments = config.document.experiments
            let running = experiments.filter { $0.isAssigning(at: now) }.count
            parts.append("experiments running \(running)/\(experiments.count)")
        } else {
            parts.append(
                "no config: answering no_config (clients serve their control) until a valid document loads from \(snapshot.source)"
            )
        }
        let disabled = snapshot.disabledTreatments
        if !disabled.isEmpty {
            let names = disabled.map { "\($0.experiment)/\($0.variant)" }.sorted()
            parts.append("disabled treatments \(names.count): \(names.joined(separator: ", "))")
        }
        if let failure = snapshot.stateFailure {
            parts.append("state not durable since \(failure.since.rfc3339) (state file writes fail: \(failure.message))")
        }
        if let failure = snapshot.lastError {
            let problems = failure.problems.isEmpty ? "" : " (\(failure.problems.count) problems)"
            parts.append("last config error \(failure.code)\(problems) at \(failure.at.rfc3339)")
        }
        return sanitised(parts.joined(separator: "; "))
    }

    /// One line: sd_notify separates assignments with newlines.
    static func sanitised(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }
}
