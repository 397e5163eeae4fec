/// The `stats` answer (PROTOCOL.md, `stats`). Numbers are written as computed; absent statistics are `null`.
extension ExperimentReport {
    func write(id: RequestID, configVersion: String, fleet: FleetState? = nil, into writer: inout JSONWriter) {
        writer.raw("{\"id\":")
        writer.id(id)
        writer.raw(",\"ok\":true,\"experiment\":")
        writer.string(experiment.name)
        writer.raw(",\"status\":")
        writer.string(experiment.status.rawValue)
        writer.raw(",\"mode\":")
        writer.string(experiment.mode.rawValue)
        writer.raw(",\"config_version\":")
        writer.string(configVersion)
        writer.raw(",\"phase\":{\"number\":")
        writer.integer(phase.number)
        writer.raw(",\"current\":")
        writer.integer(currentPhase)
        writer.raw(",\"started_at\":")
        writer.string(phase.startedAt.rfc3339)
        writer.raw(",\"reason\":")
        writer.string(phase.reason)
        writer.raw(",\"fingerprint\":")
        writer.optionalString(phase.definition?.fingerprint)
        writer.raw("},\"variants\":[")
        for (index, variant) in experiment.variants.enumerated() {
            if index > 0 { writer.raw(",") }
            writeVariant(
                variant, aggregate: aggregates[index], units: units[index], disabled: disabled[index], into: &writer)
        }
        writer.raw("],\"comparisons\":[")
        var first = true
        for (index, metrics) in comparisons.enumerated() where index != experiment.controlIndex {
            if !first { writer.raw(",") }
            first = false
            writer.raw("{\"variant\":")
            writer.string(experiment.variants[index].name)
            writer.raw(",\"metrics\":[")
            for (position, comparison) in metrics.enumerated() {
                if position > 0 { writer.raw(",") }
                Self.write(comparison, into: &writer)
            }
            writer.raw("]}")
        }
        writer.raw("],\"chi_square\":{\"error_rate\":")
        Self.write(errorRateIndependence, into: &writer)
        writer.raw(",\"success\":")
        Self.write(successIndependence, into: &writer)
        writer.raw("},\"sample_ratio\":")
        if let sampleRatio {
            writer.raw("{\"on\":\"units\",\"sampled_units\":[")
            for (index, count) in sampledUnits.enumerated() {
                if index > 0 { writer.raw(",") }
                writer.integer(count)
            }
            writer.raw("],\"exact\":")
            writer.bool(unitsAreExact)
            writer.raw(",\"statistic\":")
            writer.number(sampleRatio.statistic)
            writer.raw(",\"df\":")
            writer.integer(sampleRatio.degreesOfFreedom)
            writer.raw(",\"p_value\":")
            writer.number(sampleRatio.pValue)
            writer.raw(",\"threshold\":")
            writer.number(sampleRatio.threshold)
            writer.raw(",\"mismatch\":")
            writer.bool(sampleRatio.mismatch)
            writer.raw("}")
        } else {
            writer.null()
        }
        writer.raw(",\"sample_size\":{\"metric\":")
        writer.optionalString(primaryMetric)
        writer.raw(",\"minimum_detectable_effect\":")
        optionalNumber(minimumDetectableEffect, into: &writer)
        writer.raw(",\"design_effect\":")
        writer.number(designEffect)
        writer.raw(",\"required_per_variant\":")
        if let requiredPerVariant { writer.integer(requiredPerVariant) } else { writer.null() }
        writer.raw(",\"smallest_variant\":")
        writer.integer(smallestVariantSample)
        writer.raw(",\"reached\":")
        writer.bool(requiredPerVariant.map { smallestVariantSample >= $0 } ?? false)
        writer.raw("},\"recommendation\":{\"verdict\":")
        writer.string(verdict.rawValue)
        writer.raw(",\"variant\":")
        writer.optionalString(recommendedVariant)
        writer.raw(",\"reason\":")
        writer.string(reason)
        writer.raw("},\"prompt_rules\":[")
        for (index, count) in promptRules.enumerated() {
            writer.raw(index == 0 ? "{\"prompt\":" : ",{\"prompt\":")
            writer.string(count.prompt)
            writer.raw(",\"prompt_version\":")
            writer.integer(count.version)
            writer.raw(",\"rule\":")
            writer.string(count.rule)
            writer.raw(",\"action\":")
            writer.string(count.action.rawValue)
            writer.raw(",\"triggered\":")
            writer.integer(count.triggered)
            writer.raw("}")
        }
        writer.raw("]")
        if let fleet { Self.write(fleet, into: &writer) }
        writer.raw("}\n")
    }

    /// The `stats` answer for a fleet (`variantctl stats --prometheus`): the same members as one daemon's, and a
    /// `fleet` member naming every host and whether it was counted (docs/fleet.md).
    public func fleetAnswer(_ fleet: FleetState, configVersion: String) -> [UInt8] {
        var writer = JSONWriter(reservingCapacity: 4096)
        write(id: .null, configVersion: configVersion, fleet: fleet, into: &writer)
        return writer.bytes
    }

    private static func write(_ fleet: FleetState, into writer: inout JSONWriter) {
        writer.raw(",\"fleet\":{\"hosts_counted\":")
        writer.integer(fleet.hosts.count(where: \.counted))
        writer.raw(",\"hosts\":[")
        for (index, host) in fleet.hosts.enumerated() {
            writer.raw(index == 0 ? "{\"name\":" : ",{\"name\":")
            writer.string(host.name)
            writer.raw(",\"labels\":{")
            for (position, (label, value)) in host.labels.enumerated() {
                if position > 0 { writer.raw(",") }
                writer.string(label)
                writer.raw(":")
                writer.string(value)
            }
            writer.raw("},\"phase\":")
            writer.integer(host.phase)
            writer.raw(",\"fingerprint\":")
            writer.string(host.fingerprint)
            writer.raw(",\"config_version\":")
            writer.optionalString(host.configVersion)
            writer.raw(",\"counted\":")
            writer.bool(host.counted)
            writer.raw(",\"note\":")
            writer.optionalString(host.note)
            writer.raw("}")
        }
        writer.raw("]}")
    }

    private func writeVariant(
        _ variant: Variant, aggregate: VariantAggregate, units: Double, disabled: DisabledTreatment?,
        into writer: inout JSONWriter
    ) {
        writer.raw("{\"name\":")
        writer.string(variant.name)
        writer.raw(",\"control\":")
        writer.bool(variant.isControl)
        writer.raw(",\"weight\":")
        writer.number(Double(variant.weightBasisPoints) / 100)
        writer.raw(",\"assignments\":")
        writer.integer(aggregate.assignments)
        writer.raw(",\"units\":")
        writer.integer(Int(units.rounded()))
        writer.raw(",\"records\":")
        writer.integer(aggregate.records)
        writer.raw(",\"analysis\":")
        writer.string(aggregate.isAnalysedByUnit ? "unit" : "record")
        writer.raw(",\"shadow_records\":")
        writer.integer(aggregate.shadowRecords)
        writer.raw(",\"out_of_range\":")
        writer.integer(aggregate.outOfRange)
        writer.raw(",\"disabled\":")
        if let disabled {
            writer.raw("{\"automatic\":")
            writer.bool(disabled.automatic)
            writer.raw(",\"at\":")
            writer.string(disabled.at.rfc3339)
            writer.raw(",\"reason\":")
            writer.string(disabled.reason)
            writer.raw(",\"by\":")
            writer.string(disabled.source)
            writer.raw("}")
        } else {
            writer.null()
        }
        writer.raw(",\"error_rate\":")
        Self.write(aggregate.errors, into: &writer)
        writer.raw(",\"success\":")
        Self.write(aggregate.success, into: &writer)
        writer.raw(",\"latency_ms\":")
        Self.write(aggregate.latencyMilliseconds, into: &writer, extra: { writer in
            for (name, percentile) in [("p50", 50.0), ("p95", 95.0), ("p99", 99.0)] {
                writer.raw(",")
                writer.string(name)
                writer.raw(":")
                optionalNumber(aggregate.latencyPercentile(percentile), into: &writer)
            }
        })
        writer.raw(",\"cost_usd\":")
        Self.write(aggregate.costUSD, into: &writer)
        writer.raw(",\"tokens\":")
        Self.write(aggregate.tokens, into: &writer)
        writer.raw(",\"custom\":")
        writer.object(sortedBy: aggregate.custom) { moments, writer in Self.write(moments, into: &writer) }
        writer.raw("}")
    }

    private static func write(_ counts: ProportionCounts, into writer: inout JSONWriter) {
        writer.raw("{\"n\":")
        writer.integer(counts.trials)
        writer.raw(",\"rate\":")
        if counts.trials > 0 { writer.number(counts.rate) } else { writer.null() }
        writer.raw("}")
    }

    private static func write(
        _ moments: RunningMoments, into writer: inout JSONWriter, extra: (inout JSONWriter) -> Void = { _ in }
    ) {
        writer.raw("{\"n\":")
        writer.integer(moments.count)
        writer.raw(",\"mean\":")
        if moments.count > 0 { writer.number(moments.mean) } else { writer.null() }
        writer.raw(",\"sd\":")
        if moments.count > 1 { writer.number(moments.standardDeviation) } else { writer.null() }
        extra(&writer)
        writer.raw("}")
    }

    private static func write(_ result: ChiSquareTestResult?, into writer: inout JSONWriter) {
        guard let result else { return writer.null() }
        writer.raw("{\"statistic\":")
        writer.number(result.statistic)
        writer.raw(",\"df\":")
        writer.integer(result.degreesOfFreedom)
        writer.raw(",\"p_value\":")
        writer.number(result.pValue)
        writer.raw("}")
    }

    private static func write(_ metric: MetricComparison, into writer: inout JSONWriter) {
        let comparison = metric.comparison
        writer.raw("{\"metric\":")
        writer.string(metric.metric)
        writer.raw(",\"test\":")
        writer.string(metric.test)
        writer.raw(",\"analysis\":")
        writer.string(comparison.isByUnit ? "unit" : "record")
        writer.raw(",\"control\":")
        writer.number(comparison.control.mean)
        writer.raw(",\"treatment\":")
        writer.number(comparison.treatment.mean)
        writer.raw(",\"difference\":")
        writer.number(comparison.difference)
        writer.raw(",\"standard_error\":")
        writer.number(comparison.standardError)
        writer.raw(",\"design_effect\":")
        writer.number(comparison.designEffect)
        writer.raw(",\"interval\":")
        write(comparison.interval, into: &writer)
        writer.raw(",\"always_valid_p_value\":")
        writer.number(comparison.alwaysValidPValue)
        writer.raw(",\"fixed_horizon_interval\":")
        write(comparison.fixedHorizonInterval, into: &writer)
        writer.raw(",\"fixed_horizon_p_value\":")
        writer.number(comparison.pValue)
        writer.raw(",\"relative_difference\":")
        optionalNumber(metric.relativeDifference, into: &writer)
        writer.raw(",\"statistic\":")
        optionalNumber(comparison.statistic, into: &writer)
        writer.raw(",\"df\":")
        optionalNumber(comparison.degreesOfFreedom, into: &writer)
        if metric.test == "welch_t" {
            writer.raw(",\"cohens_d\":")
            optionalNumber(metric.cohensD, into: &writer)
        }
        writer.raw(",\"verdict\":")
        writer.string(metric.verdict)
        writer.raw("}")
    }

    private static func write(_ interval: ConfidenceInterval?, into writer: inout JSONWriter) {
        guard let interval else { return writer.null() }
        writer.raw("[")
        writer.number(interval.lower)
        writer.raw(",")
        writer.number(interval.upper)
        writer.raw("]")
    }
}

private func optionalNumber(_ value: Double?, into writer: inout JSONWriter) {
    if let value, value.isFinite { writer.number(value) } else { writer.null() }
}
