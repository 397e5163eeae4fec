import Synchronization
import VariantCore

/// The one place the daemon keeps what it serves from: config sources write, connections read.
///
/// Readers take the current `ServingSnapshot` (one retain under the lock) and answer from it without holding
/// the lock, so a reload never blocks or tears a request.
public final class ServingStateStore: Sendable {
    private let snapshot: Mutex<ServingSnapshot>

    public init(_ initial: ServingSnapshot) {
        snapshot = Mutex(initial)
    }

    public var current: ServingSnapshot {
        snapshot.withLock { $0 }
    }

    /// Replaces the snapshot with what `transform` makes of the current one.
    @discardableResult
    public func update(_ transform: (ServingSnapshot) -> ServingSnapshot) -> ServingSnapshot {
        snapshot.withLock { current in
            current = transform(current)
            return current
        }
    }
}
