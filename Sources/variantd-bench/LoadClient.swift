import Glibc

/// The current time on `CLOCK_MONOTONIC`, in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

/// Precomputed `assign` (or `op`) request lines, all of the same length, for units `<prefix>000000` through
/// `<prefix>099999`, followed by the first `maxBurst` lines once more so that any run of up to `maxBurst`
/// consecutive lines, starting at any line, is one contiguous range of bytes. Line `i` has the id
/// `firstID + i % unitCount` (all ids have 7 digits), so that each answer can be matched to its request.
final class RequestCorpus: Sendable {
    /// How many different units the requests name.
    static let unitCount = 100_000
    /// The id of line 0.
    static let firstID = 1_000_000

    /// The id of line `index`.
    static func id(ofLine index: Int) -> Int { firstID + index % unitCount }

    /// The request lines, each terminated by `\n`.
    let bytes: [UInt8]
    /// The length of every line, `\n` included.
    let lineLength: Int

    /// - Parameter extraMembers: JSON members appended to each request, with their leading comma.
    init(experiment: String, unitPrefix: String, maxBurst: Int, op: String = "assign", extraMembers: String = "") {
        func line(_ index: Int) -> [UInt8] {
            let digits = String(index)
            let unit = unitPrefix + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
            return Array(
                "{\"id\":\(Self.id(ofLine: index)),\"op\":\"\(op)\",\"experiment\":\"\(experiment)\",\"unit\":\"\(unit)\"\(extraMembers)}\n".utf8)
        }
        let lineLength = line(0).count
        var bytes = [UInt8]()
        bytes.reserveCapacity(lineLength * (Self.unitCount + maxBurst))
        for index in 0..<(Self.unitCount + maxBurst) {
            bytes += line(index % Self.unitCount)
        }
        self.bytes = bytes
        self.lineLength = lineLength
    }

    /// The byte offset of line `index`, taken modulo `unitCount`.
    func offset(ofLine index: Int) -> Int {
        (index % Self.unitCount) * lineLength
    }
}

/// What every answer must say, checked on every answer of every run, for every server alike (the cost of
/// checking is the same for all: a few short searches at the start of each line).
struct AnswerCheck: Sendable {
    /// Whether the server answers each request with the request's id (variantd). The floor and the NIO reference
    /// answer every line with one fixed answer, whose id is 1.
    var echoesID: Bool
    /// Whether each answer must carry a rendered text (`render` requests).
    var rendered = false

    /// variantd's answers to `assign`.
    static let assign = AnswerCheck(echoesID: true)
    /// variantd's answers to `render` with a text prompt.
    static let render = AnswerCheck(echoesID: true, rendered: true)
    /// udsfloor's and the NIO reference server's fixed answer.
    static let fixedAnswer = AnswerCheck(echoesID: false)

    private static let idKey = Array(#""id":"#.utf8)
    private static let okKey = Array(#""ok":true"#.utf8)
    private static let variantKey = Array(#""variant":""#.utf8)
    private static let textKey = Array(#""text":""#.utf8)

    /// The id the answer to corpus line `index` must have.
    func expectedID(ofLine index: Int) -> Int {
        echoesID ? RequestCorpus.id(ofLine: index) : 1
    }

    /// Fails unless `line` has the id `id`, `"ok":true`, a non-empty variant and, for a render, a text.
    func verify(_ line: UnsafeBufferPointer<UInt8>, id: Int, server: String) throws {
        var answered: Int?
        if let idEnd = Self.end(of: Self.idKey, in: line) {
            var value = 0
            var index = idEnd
            while index < line.count, line[index] >= 0x30, line[index] <= 0x39 {
                value = value * 10 + Int(line[index] - 0x30)
                index += 1
            }
            if index > idEnd { answered = value }
        }
        let variantEnd = Self.end(of: Self.variantKey, in: line)
        guard answered == id, Self.end(of: Self.okKey, in: line) != nil,
            let variantEnd, variantEnd < line.count, line[variantEnd] != UInt8(ascii: "\""),
            !rendered || Self.end(of: Self.textKey, in: line) != nil
        else {
            throw BenchError(
                "a wrong answer from \(server) (expected id \(id), \"ok\":true, a variant\(rendered ? ", a text" : "")):\n"
                    + String(decoding: line.prefix(400), as: UTF8.self))
        }
    }

    /// The index just past the first occurrence of `key` in `line`.
    private static func end(of key: [UInt8], in line: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let base = line.baseAddress, line.count >= key.count else { return nil }
        return key.withUnsafeBytes { key in
            var start = 0
            let last = line.count - key.count
            while start <= last, let found = memchr(base + start, Int32(key[0]), last - start + 1) {
                let at = UnsafePointer(found.assumingMemoryBound(to: UInt8.self)) - base
                if memcmp(base + at, key.baseAddress!, key.count) == 0 { return at + key.count }
                start = at + 1
            }
            return nil
        }
    }
}

/// A client connection to a Unix stream socket, with a preallocated receive buffer.
///
/// Every answer is checked (`AnswerCheck`) as it arrives; an answer split across two reads is put together
/// first. One thread uses a connection at a time.
final class BenchConnection {
    private static let receiveBufferSize = 1 << 16

    private let socketPath: String
    private let descriptor: Int32
    private let receiveBuffer: UnsafeMutableBufferPointer<UInt8>
    /// The bytes of an incomplete answer at the start of `receiveBuffer`, left from the last read.
    private var carried = 0
    /// Whether the descriptor is closed with this connection (not when adopted).
    private var ownsDescriptor = true

    /// Connects to the socket at `socketPath`.
    init(socketPath: String) throws {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(socketPath.utf8)
        let fits = withUnsafeMutableBytes(of: &address.sun_path) { sunPath in
            guard pathBytes.count < sunPath.count else { return false }
            sunPath.copyBytes(from: pathBytes)
            return true
        }
        guard fits else { throw BenchError("socket path is too long for a Unix socket: \(socketPath)") }
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw BenchError.system("socket", socketPath) }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard result == 0 else {
            let error = BenchError.system("connect", socketPath)
            close(descriptor)
            throw error
        }
        self.socketPath = socketPath
        self.descriptor = descriptor
        self.receiveBuffer = .allocate(capacity: Self.receiveBufferSize)
    }

    /// Uses `descriptor`, a connection to `socketPath` that someone else owns and closes (the Swift shim's own, for
    /// raw round trips beside its calls).
    init(adopting descriptor: Int32, socketPath: String) {
        self.socketPath = socketPath
        self.descriptor = descriptor
        self.receiveBuffer = .allocate(capacity: Self.receiveBufferSize)
        ownsDescriptor = false
    }

    deinit {
        if ownsDescriptor { close(descriptor) }
        receiveBuffer.deallocate()
    }

    /// Writes all `count` bytes at `bytes`.
    func send(_ bytes: UnsafeRawPointer, count: Int) throws {
        var written = 0
        while written < count {
            let result = write(descriptor, bytes + written, count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw BenchError.system("write", socketPath)
            }
            written += result
        }
    }

    /// One round trip, timed: line `line` of `corpus` (whose bytes start at `base`) sent, and its answer read and
    /// checked with `check`. Returns its time in nanoseconds.
    func roundTrip(_ base: UnsafeRawPointer, of corpus: RequestCorpus, line: Int, check: AnswerCheck) throws -> UInt64 {
        let sent = monotonicNanoseconds()
        try send(base + corpus.offset(ofLine: line), count: corpus.lineLength)
        try receive(responses: 1, firstLine: line, check: check)
        return monotonicNanoseconds() - sent
    }

    /// Reads `count` answers, checking each with `check`: they answer the lines from `firstLine` on.
    func receive(responses count: Int, firstLine: Int, check: AnswerCheck) throws {
        let base = receiveBuffer.baseAddress!
        var seen = 0
        while seen < count {
            let room = receiveBuffer.count - carried
            guard room > 0 else {
                throw BenchError("an answer on \(socketPath) is longer than \(receiveBuffer.count) bytes")
            }
            let result = read(descriptor, base + carried, room)
            if result <= 0 {
                if result < 0 && errno == EINTR { continue }
                if result == 0 { throw BenchError("the server closed \(socketPath) with responses outstanding") }
                throw BenchError.system("read", socketPath)
            }
            // memchr, not a loop over every byte: a 2 KB render answer would otherwise cost the client more than
            // the daemon's own reading of it.
            let end = base + carried + result
            var lineStart = base
            while lineStart < end, let newline = memchr(lineStart, 0x0A, end - lineStart) {
                let lineEnd = newline.assumingMemoryBound(to: UInt8.self)
                try check.verify(
                    UnsafeBufferPointer(start: lineStart, count: lineEnd - lineStart),
                    id: check.expectedID(ofLine: firstLine + seen), server: socketPath)
                seen += 1
                lineStart = lineEnd + 1
            }
            carried = end - lineStart
            if carried > 0 { memmove(base, lineStart, carried) }
        }
    }

    /// Reads one whole response line, without its `\n`. Only for the correctness check: the line must be the
    /// only response outstanding.
    func receiveLine() throws -> String {
        var line = [UInt8]()
        while true {
            let result = read(descriptor, receiveBuffer.baseAddress, receiveBuffer.count)
            if result < 0 && errno == EINTR { continue }
            if result < 0 { throw BenchError.system("read", socketPath) }
            if result == 0 { throw BenchError("the server closed \(socketPath) before answering") }
            line += receiveBuffer[0..<result]
            if let end = line.firstIndex(of: UInt8(ascii: "\n")) {
                return String(decoding: line[..<end], as: UTF8.self)
            }
        }
    }
}

/// One load phase's raw outcome: per-request round-trip times (empty for pipelined load) and wall time.
struct PhaseOutcome {
    /// Round-trip times in nanoseconds, from all connections.
    var roundTrips: [UInt64]
    /// Requests answered, over all connections.
    var requests: Int
    /// Wall time from starting the first connection to the last one finishing, in nanoseconds.
    var elapsed: UInt64

    /// Answered requests per second of wall time.
    var requestsPerSecond: Double {
        Double(requests) / (Double(elapsed) / 1e9)
    }
}

/// Drives the benchmark's load against one Unix socket in the same shapes as udsfloor's client: one request in
/// flight per connection, or pipelined bursts of `depth` requests (write them all, then read all the responses).
struct LoadGenerator: Sendable {
    let socketPath: String
    let corpus: RequestCorpus
    /// What every answer must say.
    var check = AnswerCheck.assign

    /// Sends one request and fails, showing the request, unless its answer passes `check`.
    func verify() throws {
        let connection = try BenchConnection(socketPath: socketPath)
        try corpus.bytes.withUnsafeBytes { bytes in
            try connection.send(bytes.baseAddress!, count: corpus.lineLength)
        }
        do {
            try connection.receive(responses: 1, firstLine: 0, check: check)
        } catch {
            throw BenchError(
                "the correctness check failed; request:\n"
                    + String(decoding: corpus.bytes[0..<corpus.lineLength - 1], as: UTF8.self) + "\n\(error)")
        }
    }

    /// Runs `requestsPerConnection` round trips, one in flight, on each of `connections` connections at once,
    /// timing each with `CLOCK_MONOTONIC`.
    func oneInFlight(connections: Int, requestsPerConnection: Int) throws -> PhaseOutcome {
        let linesPerConnection = RequestCorpus.unitCount / connections
        let start = monotonicNanoseconds()
        let perConnection = try runOnThreads(count: connections) { index in
            let connection = try BenchConnection(socketPath: socketPath)
            var roundTrips = [UInt64](repeating: 0, count: requestsPerConnection)
            try corpus.bytes.withUnsafeBytes { bytes in
                let base = bytes.baseAddress!
                var line = index * linesPerConnection
                for request in 0..<requestsPerConnection {
                    roundTrips[request] = try connection.roundTrip(base, of: corpus, line: line, check: check)
                    line += 1
                }
            }
            return roundTrips
        }
        let elapsed = monotonicNanoseconds() - start
        let roundTrips = perConnection.flatMap { $0 }
        return PhaseOutcome(roundTrips: roundTrips, requests: roundTrips.count, elapsed: elapsed)
    }

    /// `pairs` pairs of round trips on one connection, one request in flight: line `i` of this generator's corpus
    /// and line `i` of `other`'s, which of the two goes first alternating. Both requests of a pair go to the same
    /// event-loop thread of the server at the same moment, so a comparison of the two is not decided by where the
    /// scheduler put that thread (on the client's core, a round trip here takes half as long as on the other).
    /// Returns each one's round-trip times in nanoseconds.
    func paired(with other: LoadGenerator, pairs: Int) throws -> (mine: [UInt64], other: [UInt64]) {
        precondition(socketPath == other.socketPath, "a pair goes to one server")
        let connection = try BenchConnection(socketPath: socketPath)
        var mine = [UInt64](repeating: 0, count: pairs)
        var others = [UInt64](repeating: 0, count: pairs)
        try corpus.bytes.withUnsafeBytes { myBytes in
            try other.corpus.bytes.withUnsafeBytes { otherBytes in
                func roundTrip(_ bytes: UnsafeRawBufferPointer, _ load: LoadGenerator, line: Int) throws -> UInt64 {
                    try connection.roundTrip(bytes.baseAddress!, of: load.corpus, line: line, check: load.check)
                }
                for line in 0..<pairs {
                    if line % 2 == 0 {
                        mine[line] = try roundTrip(myBytes, self, line: line)
                        others[line] = try roundTrip(otherBytes, other, line: line)
                    } else {
                        others[line] = try roundTrip(otherBytes, other, line: line)
                        mine[line] = try roundTrip(myBytes, self, line: line)
                    }
                }
            }
        }
        return (mine, others)
    }

    /// Sends `totalRequests / connections` requests on each of `connections` connections at once, in bursts of
    /// `depth`: each burst is written with one `write` and all its responses are read before the next.
    func pipelined(connections: Int, totalRequests: Int, depth: Int) throws -> PhaseOutcome {
        let requestsPerConnection = totalRequests / connections
        let linesPerConnection = RequestCorpus.unitCount / connections
        let start = monotonicNanoseconds()
        try runOnThreads(count: connections) { index in
            let connection = try BenchConnection(socketPath: socketPath)
            try corpus.bytes.withUnsafeBytes { bytes in
                let base = bytes.baseAddress!
                var line = index * linesPerConnection
                var remaining = requestsPerConnection
                while remaining > 0 {
                    let burst = min(depth, remaining)
                    try connection.send(base + corpus.offset(ofLine: line), count: burst * corpus.lineLength)
                    try connection.receive(responses: burst, firstLine: line, check: check)
                    line += burst
                    remaining -= burst
                }
            }
        }
        let elapsed = monotonicNanoseconds() - start
        return PhaseOutcome(roundTrips: [], requests: requestsPerConnection * connections, elapsed: elapsed)
    }
}

/// A body to run on a new thread, passed through `pthread_create`'s context pointer.
private final class ThreadEntry {
    let body: () -> Void

    init(body: @escaping () -> Void) {
        self.body = body
    }
}

/// Holds one thread's result until the thread has been joined.
private final class ThreadResult<Value>: @unchecked Sendable {
    // Written only by its thread, read only after `pthread_join`, which orders the two.
    var outcome: Result<Value, any Error>?
}

/// Runs `body(index)` for every index in `0..<count`, each on its own OS thread, all at once; waits for all of
/// them and returns their results in index order, or throws the first error (by index) that one threw.
@discardableResult
func runOnThreads<Value>(count: Int, _ body: @escaping @Sendable (Int) throws -> Value) throws -> [Value] {
    let results = (0..<count).map { _ in ThreadResult<Value>() }
    var threads = [pthread_t]()
    for index in 0..<count {
        let result = results[index]
        let entry = ThreadEntry { result.outcome = Result { try body(index) } }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(entry).toOpaque()
        let status = pthread_create(&thread, nil, { context in
            Unmanaged<ThreadEntry>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context)
        guard status == 0 else {
            Unmanaged<ThreadEntry>.fromOpaque(context).release()
            for started in threads { pthread_join(started, nil) }
            throw BenchError("pthread_create failed: \(String(cString: strerror(status)))")
        }
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
    return try results.map { try $0.outcome!.get() }
}
