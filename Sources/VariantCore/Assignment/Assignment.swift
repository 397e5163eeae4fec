/// Why a unit got the variant it got; see PROTOCOL.md, "Decision order".
public enum AssignmentReason: String, Sendable, CaseIterable {
    case assigned
    case draft
    case paused
    case completed
    case notStarted = "not_started"
    case ended
    case notTargeted = "not_targeted"
    case outsideExposure = "outside_exposure"
    /// The unit's variant is a treatment that a guardrail or an operator disabled; it gets the control.
    case disabled
    /// Shadow mode: the unit gets the control, and the client may run `shadow` in the background.
    case shadow
    case noConfig = "no_config"
    case fallback
}

/// The outcome of assigning one unit in one experiment.
public struct Assignment: Sendable {
    public var variantIndex: Int
    public var enrolled: Bool
    public var reason: AssignmentReason
    /// Shadow mode only: the treatment to run in the background (nil when the unit's variant is the control).
    public var shadowVariantIndex: Int?

    public init(variantIndex: Int, enrolled: Bool, reason: AssignmentReason, shadowVariantIndex: Int? = nil) {
        self.variantIndex = variantIndex
        self.enrolled = enrolled
        self.reason = reason
        self.shadowVariantIndex = shadowVariantIndex
    }

    /// The variant the unit's results belong to: the shadow variant if it runs one, else the one it is served.
    public var measuredVariantIndex: Int { shadowVariantIndex ?? variantIndex }
}

extension Experiment {
    /// Decides which variant a unit gets, following the decision order of PROTOCOL.md section 2.
    ///
    /// Pure and deterministic: the same experiment, unit, attributes and time give the same answer anywhere.
    public func assign(unit: String, attributes: JSONObject, now: Timestamp) -> Assignment {
        switch status {
        case .draft: return Assignment(variantIndex: controlIndex, enrolled: false, reason: .draft)
        case .paused: return Assignment(variantIndex: controlIndex, enrolled: false, reason: .paused)
        case .completed:
            return Assignment(variantIndex: winnerIndex ?? controlIndex, enrolled: false, reason: .completed)
        case .running: break
        }
        if let start, now < start {
            return Assignment(variantIndex: controlIndex, enrolled: false, reason: .notStarted)
        }
        if let end, now >= end {
            return Assignment(variantIndex: controlIndex, enrolled: false, reason: .ended)
        }
        if !targeting.allSatisfy({ $0.matches(attributes) }) {
            return Assignment(variantIndex: controlIndex, enrolled: false, reason: .notTargeted)
        }
        if !isExposed(unit: unit) {
            return Assignment(variantIndex: controlIndex, enrolled: false, reason: .outsideExposure)
        }
        let hashed = hashedVariantIndex(unit: unit)
        if mode == .shadow {
            return Assignment(
                variantIndex: controlIndex, enrolled: true, reason: .shadow,
                shadowVariantIndex: hashed == controlIndex ? nil : hashed)
        }
        return Assignment(variantIndex: hashed, enrolled: true, reason: .assigned)
    }

    /// Whether the experiment enrols units now: running, and inside its window.
    public func isAssigning(at now: Timestamp) -> Bool {
        guard status == .running else { return false }
        if let start, now < start { return false }
        if let end, !(now < end) { return false }
        return true
    }

    /// Whether the unit falls inside the exposure, independently of which variant it would get.
    public func isExposed(unit: String) -> Bool {
        exposureBasisPoints >= 10000
            || Bucketing.bucket(salt: salt, label: .exposure, unit: unit) < exposureBasisPoints
    }

    /// The variant the hash gives the unit if it is enrolled, whatever the exposure, status or targeting.
    public func hashedVariantIndex(unit: String) -> Int {
        let bucket = Bucketing.bucket(salt: salt, label: .variant, unit: unit)
        return Bucketing.variantIndex(bucket: bucket, weightsInBasisPoints: variants.lazy.map(\.weightBasisPoints))
            ?? controlIndex
    }
}
