import Glibc

/// How long a test waits for a condition before it gives up, reached only when the condition will never hold (a
/// passing test waits just as long as the condition takes). Five minutes, because the in-process poller tests run
/// on the cooperative pool (one thread per core, two here), which the synchronous integration tests hold while
/// they block on their sockets: with both cores busy, a poller test has waited more than a minute for a thread.
let patience: Duration = .seconds(300)

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
