import Dispatch
import Glibc
import NIOCore
import NIOPosix
import Synchronization
import Testing
import VariantCore
@testable import VariantDaemon

/// The connection's state machine driven event by event, on a clock the test steps: which lines wait, when reading
/// pauses and resumes, when the connection closes and when its timers are due.
@Suite struct ConnectionStateMachineTests {
    typealias Machine = ConnectionStateMachine<SteppedClock, String>

    static func machine(idleTimeout: Duration? = nil, clock: SteppedClock) -> Machine {
        Machine(idleTimeout: idleTimeout, stopTimeout: .seconds(5), clock: clock)
    }

    static func held(_ machine: inout Machine) -> [String] {
        var inputs: [String] = []
        while let input = machine.nextHeld() {
            switch input {
            case .line(let line):
                #expect(machine.lineRead(line) == .answer, "a held line is answered once it comes out")
                inputs.append(line)
            case .tooLong:
                inputs.append("<too long>")
            }
        }
        return inputs
    }

    @Test func aQuiescedConnectionClosesAfterItsLastAnswerIsSent() {
        let clock = SteppedClock()
        var machine = Self.machine(clock: clock)
        #expect(machine.bytesRead() == true)
        #expect(machine.lineRead("a") == .answer)
        #expect(machine.answersWritten() == .write)  // an ordinary write: nothing waits for it
        let deadline = clock.now.advanced(by: .seconds(5))
        #expect(machine.closeRequested() == .drain(stopDeadline: deadline))
        #expect(machine.closeRequested() == .none, "asked twice, closes once")
        // The answers still pending, then the empty write.
        #expect(machine.answersWritten() == .writeTracked)
        #expect(machine.answersWritten() == .writeTracked)
        #expect(machine.writeCompleted() == false)
        #expect(machine.writeCompleted() == true, "closes when the last write is done")
        clock.advance(by: .seconds(5))
        #expect(machine.timerDue(.stop) == .none, "everything was sent: the stop timeout has nothing to cut")
    }

    @Test func aClosingConnectionReadsNoMore() {
        let clock = SteppedClock()
        var machine = Self.machine(clock: clock)
        #expect(machine.writabilityChanged(isWritable: false) == false)
        #expect(machine.readRequested() == false)
        #expect(machine.closeRequested() == .drain(stopDeadline: clock.now.advanced(by: .seconds(5))))
        #expect(machine.writabilityChanged(isWritable: true) == false, "the read deferred before the close is not made")
    }

    @Test func aQuiesceDuringADurableRequestWaitsForItAndTheLinesHeld() {
        let clock = SteppedClock()
        var machine = Self.machine(clock: clock)
        #expect(machine.lineRead("health") == .answer)
        #expect(machine.lineRead("disable") == .answer)
        machine.durableStarted()
        #expect(machine.answersWritten() == .write)  // the answers before it go out first
        #expect(machine.lineRead("assign 1") == .hold)
        #expect(machine.lineRead("enable") == .hold)
        #expect(machine.lineRead("assign 2") == .hold)
        #expect(machine.readRequested() == false, "reading pauses while a durable request is in flight")
        #expect(machine.isReadingPaused)
        #expect(machine.closeRequested() == .stopReading)
        #expect(machine.closeRequested() == .none)

        clock.advance(by: .seconds(30))  // a slow disk: no stop timeout runs while the durable request is in flight
        #expect(machine.durableFinished() == true)
        #expect(machine.nextHeld().map(Self.describe) == "assign 1")
        #expect(machine.lineRead("assign 1") == .answer)
        #expect(machine.nextHeld().map(Self.describe) == "enable")
        #expect(machine.lineRead("enable") == .answer)
        machine.durableStarted()  // the held `enable` is durable too: the rest waits for it
        #expect(machine.nextHeld() == nil)
        #expect(machine.answersWritten() == .write)
        #expect(machine.heldAnswered() == .none)

        #expect(machine.durableFinished() == true)
        #expect(Self.held(&machine) == ["assign 2"])
        #expect(machine.answersWritten() == .write)
        let deadline = clock.now.advanced(by: .seconds(5))
        #expect(machine.heldAnswered() == .close(.drain(stopDeadline: deadline)), "the deferred read is not made")
        #expect(machine.answersWritten() == .writeTracked)
        #expect(machine.writeCompleted() == true)
    }

    @Test func aLineTooLongIsAnsweredAndTheRestOfTheInputDropped() {
        let clock = SteppedClock()
        var machine = Self.machine(clock: clock)
        #expect(machine.lineRead("a") == .answer)
        #expect(machine.lineTooLong() == .answer(then: .drain(stopDeadline: clock.now.advanced(by: .seconds(5)))))
        #expect(machine.bytesRead() == false, "the input after it is dropped")
    }

    @Test func aLineTooLongDuringADurableRequestIsAnsweredAfterItAndTheLinesBefore() {
        let clock = SteppedClock()
        var machine = Self.machine(clock: clock)
        #expect(machine.lineRead("disable") == .answer)
        machine.durableStarted()
        #expect(machine.lineRead("a") == .hold)
        #expect(machine.lineTooLong() == .hold(then: .stopReading))
        #expect(machine.bytesRead() == false)
        #expect(machine.durableFinished() == true)
        #expect(Self.held(&machine) == ["a", "<too long>"])
        #expect(machine.answersWritten() == .write)
        #expect(machine.heldAnswered() == .close(.drain(stopDeadline: clock.now.advanced(by: .seconds(5)))))
    }

    @Test func aDurableAnswerAfterTheChannelClosedIsDropped() {
        var machine = Self.machine(clock: SteppedClock())
        machine.durableStarted()
        #expect(machine.lineRead("a") == .hold)
        machine.deactivated()
        #expect(machine.durableFinished() == false)
    }

    @Test func anIdleConnectionIsClosedAndReadsAndWritesPostponeIt() {
        let clock = SteppedClock()
        var machine = Self.machine(idleTimeout: .seconds(300), clock: clock)
        let start = clock.now
        #expect(machine.activated() == .schedule(.idle, deadline: start.advanced(by: .seconds(300))))
        clock.advance(by: .seconds(100))
        #expect(machine.bytesRead() == true)
        clock.advance(by: .seconds(100))
        #expect(machine.answersWritten() == .write)
        clock.advance(by: .seconds(100))
        #expect(machine.timerDue(.idle) == .schedule(.idle, deadline: start.advanced(by: .seconds(500))))
        clock.advance(by: .seconds(199))
        #expect(machine.timerDue(.idle) == .schedule(.idle, deadline: start.advanced(by: .seconds(500))))
        clock.advance(by: .seconds(1))
        #expect(machine.timerDue(.idle) == .closeIdle)
        #expect(machine.timerDue(.idle) == .none, "closed once")
    }

    @Test func withoutAnIdleTimeoutAConnectionIsKept() {
        var machine = Self.machine(clock: SteppedClock())
        #expect(machine.activated() == .none)
        #expect(machine.timerDue(.idle) == .none)
    }

    @Test func aClientThatDoesNotReadItsLastAnswersIsCutOffAtTheStopTimeout() {
        let clock = SteppedClock()
        var machine = Self.machine(clock: clock)
        let deadline = clock.now.advanced(by: .seconds(5))
        #expect(machine.closeRequested() == .drain(stopDeadline: deadline))
        #expect(machine.answersWritten() == .writeTracked)
        #expect(machine.answersWritten() == .writeTracked)
        #expect(machine.writeCompleted() == false)
        clock.advance(by: .milliseconds(4999))
        #expect(machine.timerDue(.stop) == .schedule(.stop, deadline: deadline), "a timer a little early checks again")
        clock.advance(by: .milliseconds(1))
        #expect(machine.timerDue(.stop) == .closeUnread(writesPending: 1))
        machine.deactivated()
        #expect(machine.timerDue(.stop) == .none)
    }

    @Test func readingPausesWhileAnswersAreUnsentAndResumesWhenTheyDrain() {
        var machine = Self.machine(clock: SteppedClock())
        #expect(machine.readRequested() == true)
        #expect(machine.writabilityChanged(isWritable: false) == false, "nothing to resume")
        #expect(machine.readRequested() == false)
        #expect(machine.isReadingPaused)
        #expect(machine.writabilityChanged(isWritable: true) == true, "the deferred read is made")
        #expect(!machine.isReadingPaused)
        #expect(machine.writabilityChanged(isWritable: true) == false, "once")
        #expect(machine.readRequested() == true)
    }

    @Test func readingResumesOnlyOnceWritableAndNoDurableRequestIsInFlight() {
        var machine = Self.machine(clock: SteppedClock())
        #expect(machine.writabilityChanged(isWritable: false) == false)
        machine.durableStarted()
        #expect(machine.readRequested() == false)
        #expect(machine.writabilityChanged(isWritable: true) == false, "the durable request is still in flight")
        #expect(machine.writabilityChanged(isWritable: false) == false)
        #expect(machine.durableFinished() == true)
        #expect(Self.held(&machine).isEmpty)
        #expect(machine.heldAnswered() == .none, "still not writable")
        #expect(machine.writabilityChanged(isWritable: true) == true)
    }

    static func describe(_ input: Machine.Held) -> String {
        switch input {
        case .line(let line): line
        case .tooLong: "<too long>"
        }
    }
}

/// Back-pressure on a real socket pair served by a one-thread event loop: a client that writes requests without
/// reading the answers makes the daemon stop reading once its unsent answers pass the channel's high water mark,
/// instead of buffering answers without bound; once the client reads, every request is answered, in order.
@Suite(.serialized) struct ConnectionBackPressureTests {
    @Test func aClientThatDoesNotReadStopsTheDaemonReadingUntilItDoes() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        defer { try? group.syncShutdownGracefully() }
        let connection = try DurableRequestTests.Connection(group: group, context: .detached())
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(connection.descriptor, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        let count = 100_000
        let requests = Array((0..<count).map { #"{"id":\#($0),"op":"health"}"# + "\n" }.joined().utf8)
        let sent = SentFlag()
        let descriptor = connection.descriptor
        DispatchQueue.global().async {
            var offset = 0
            while offset < requests.count {
                let written = requests.withUnsafeBytes {
                    send(descriptor, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL))
                }
                if written <= 0 { break }
                offset += written
            }
            sent.done.store(true, ordering: .sequentiallyConsistent)
        }

        // The daemon has stopped reading: its unsent answers do not grow while the event loop serves another
        // connection (a round trip on `probe`, so the loop polled its sockets, this one's unread requests
        // included), and the client's sender is stuck (it would have finished, had the daemon read everything).
        let probe = try DurableRequestTests.Connection(group: group, context: .detached())
        func unsentAnswers() throws -> Int { try connection.channel.getOption(.bufferedWritableBytes).wait() }
        var unsent = 0
        #expect(
            try eventually {
                let before = try unsentAnswers()
                for _ in 0..<2 {
                    probe.send(#"{"op":"health"}"# + "\n")
                    _ = try probe.answer()
                }
                unsent = try unsentAnswers()
                return unsent == before && !sent.done.load(ordering: .sequentiallyConsistent)
            }, "the daemon never stopped reading")

        // Every answer, in order, once the client reads.
        var received = 0
        var tail: [UInt8] = []  // the last bytes received, the last answer among them
        var chunk = [UInt8](repeating: 0, count: 65536)
        while received < count {
            let got = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            try #require(got > 0, "answers stopped after \(received) of \(count)")
            received += chunk.withUnsafeBytes { raw in
                var lines = 0
                var offset = 0
                while offset < got, let newline = memchr(raw.baseAddress! + offset, 0x0A, got - offset) {
                    lines += 1
                    offset = raw.baseAddress!.distance(to: UnsafeRawPointer(newline)) + 1
                }
                return lines
            }
            tail = Array((tail + chunk[..<got]).suffix(4096))
        }
        let last = Array(tail.dropLast().split(separator: UInt8(ascii: "\n")).last ?? [])
        #expect(eventually { sent.done.load(ordering: .sequentiallyConsistent) })
        #expect(try JSONParser.parse(last).objectValue?["id"] == .number(Double(count - 1)))

        // Unsent answers stayed within the high water mark (64 KiB) and the answers to one read cycle (at most
        // four reads of 64 KiB), far below the answers to everything sent.
        let answerBytes = last.count + 1
        let requestBytes = requests.count / count
        let bound = 64 * 1024 + 4 * 65536 / requestBytes * answerBytes
        #expect(unsent <= bound, "\(unsent) bytes of answers unsent, bound \(bound)")
        #expect(bound * 4 < count * answerBytes, "the test sends enough to tell a bound from none")
    }
}

/// Set once the sending thread is done.
private final class SentFlag: Sendable {
    let done = Atomic(false)
}
