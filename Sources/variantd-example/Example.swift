import Foundation
import Glibc
import VariantClient
import VariantCore

/// A worked example of the Swift shim: a service that asks variantd for its prompt, calls a (fake, local) model,
/// and records latency, errors and success.
///
///     swift run variantd-example [SOCKET] [REQUESTS]
///
/// It keeps working with the daemon down: every request is then served the fallback's control prompt.
@main
struct Example {
    /// What this service serves when variantd cannot answer: its own copy of the experiment's control.
    static let fallback = Fallback(experiments: [
        "checkout-prompt": .init(
            variant: "control", prompt: "checkout", promptVersion: 1,
            template: "You are a friendly checkout assistant for {{store_name}}. Help {{customer_name}} finish their order.")
    ])

    struct ModelError: Error {}

    /// Stands in for an LLM call: a little latency and an occasional failure, from a seeded generator.
    static func fakeModel(_ prompt: String, random: inout SplitMix64) throws(ModelError) -> String {
        usleep(UInt32(1_000 + random.next() % 3_000))
        if random.next() % 10 == 0 { throw ModelError() }
        return "(\(prompt.utf8.count) bytes of prompt) Your order is ready to check out."
    }

    static func main() {
        let arguments = CommandLine.arguments
        let socket = arguments.count > 1 ? arguments[1] : VariantConnection.defaultSocketPath
        let requests = arguments.count > 2 ? Int(arguments[2]) ?? 20 : 20
        var configuration = VariantClient.Configuration(socketPath: socket)
        configuration.timeout = 0.05
        let client = VariantClient(configuration: configuration, fallback: fallback)
        // Seeded, so the example's fake model behaves the same on every run.
        var random = SplitMix64(seed: 7)
        for index in 0..<requests {
            let user = "user-\(index)"
            let assignment = client.prompt("checkout-prompt", unit: user)
            // Attach to the request's trace: assignment.traceMetadata (Langfuse) or traceAttributes() (OpenTelemetry).
            let trace = assignment.traceMetadata
            let prompt = (assignment.template ?? "")
                .replacingOccurrences(of: "{{store_name}}", with: "Example Store")
                .replacingOccurrences(of: "{{customer_name}}", with: user)
            let started = monotonicMilliseconds()
            do {
                let reply = try fakeModel(prompt, random: &random)
                client.record(
                    assignment,
                    Measurements(latencyMilliseconds: monotonicMilliseconds() - started, error: false, success: random.next() % 10 < 6 ? 1 : 0))
                print("\(user): \(render(trace["variant"])) (\(assignment.reason), prompt v\(render(trace["prompt_version"]))) -> \(reply.prefix(30))...")
            } catch {
                client.record(assignment, Measurements(latencyMilliseconds: monotonicMilliseconds() - started, error: true, success: 0))
                print("\(user): \(render(trace["variant"])) (\(assignment.reason)) -> error")
            }
        }
        client.flush(timeout: 5)
        let counters = client.counters
        print("sent \(counters.sent) records, dropped \(counters.dropped), rejected \(counters.rejected), fallbacks \(counters.fallbacks)")
        client.close()
    }

    static func render(_ value: JSONValue?) -> String {
        switch value {
        case .string(let text)?: return text
        case .number(let number)?: return String(Int(number))
        default: return "-"
        }
    }

    static func monotonicMilliseconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) * 1e3 + Double(now.tv_nsec) / 1e6
    }
}
