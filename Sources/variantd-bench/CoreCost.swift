import Foundation
import VariantCore

/// What answering one request costs in the core alone (parse, assign, write the answer), in this process,
/// without a socket or NIO: the part of the round trip that tuning the core can move.
struct CoreCost: Encodable {
    var nanosecondsPerRequest: Double
    /// One core's ceiling if nothing but the core ran.
    var requestsPerSecondPerCore: Double

    static func measure(
        configPath: String, experiment: String, unitPrefix: String, requests: Int, op: String = "assign",
        extraMembers: String = "", withUnit: Bool = true
    ) throws -> CoreCost {
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: configPath)))
        let document = try ConfigDocument.validate(bytes)
        let now = Timestamp(secondsSinceEpoch: Date().timeIntervalSince1970)
        let config = LoadedConfig(
            document: document, version: LoadedConfig.version(of: bytes), source: configPath, loadedAt: now)
        let snapshot = ServingSnapshot(config: config, source: configPath, lastError: nil, startedAt: now)
        let lines = (0..<1000).map {
            let unit = withUnit ? #","unit":"\#(unitPrefix)\#($0)""# : ""
            return Array(#"{"id":\#($0),"op":"\#(op)","experiment":"\#(experiment)"\#(unit)\#(extraMembers)}"#.utf8)
        }
        var writer = JSONWriter(reservingCapacity: 1 << 16)
        let context = RequestContext.detached()
        let start = DispatchTime.now().uptimeNanoseconds
        for index in 0..<requests {
            lines[index % lines.count].withUnsafeBufferPointer {
                Responder.respond(to: $0, snapshot: snapshot, now: now, context: context, into: &writer)
            }
            if writer.bytes.count > 60_000 { writer.reset() }
        }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
        let perRequest = elapsed / Double(requests)
        return CoreCost(nanosecondsPerRequest: perRequest, requestsPerSecondPerCore: 1e9 / perRequest)
    }
}
