import Glibc

/// How long a test waits for a condition before it gives up: long, because a loaded machine is slow, and reached
/// only when the condition will never hold (a passing test waits just as long as the condition takes).
let patience: Duration = .seconds(60)

/// The one way tests wait: on a condition, checked every few milliseconds, never "sleep, then count". Returns
/// whether the condition holds; the caller expects it to, where the failure shows.
func eventually(timeout: Duration = patience, _ condition: () throws -> Bool) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try condition()
}

/// `eventually` for synchronous tests, which have a thread of their own to block.
func eventually(timeout: Duration = patience, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try condition() { return true }
        usleep(10_000)
    }
    return try condition()
}
