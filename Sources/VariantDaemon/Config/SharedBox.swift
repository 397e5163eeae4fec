import Synchronization

/// A value shared between tasks; every access holds `value`'s lock, which is what makes it `Sendable`.
final class SharedBox<Value: Sendable>: Sendable {
    private let value: Mutex<Value>

    init(_ initial: Value) {
        value = Mutex(initial)
    }

    var current: Value {
        value.withLock { $0 }
    }

    /// Stores `new` and returns what was there.
    @discardableResult
    func exchange(_ new: Value) -> Value {
        value.withLock { stored in
            let old = stored
            stored = new
            return old
        }
    }

    func withLock<Result: Sendable>(_ body: (inout Value) -> Result) -> Result {
        value.withLock { body(&$0) }
    }
}
