/// The `stats` answer (PROTOCOL.md, `stats`). Numbers are written as computed; absent statistics are `null`.
struct StatsAnswer: Answer {
    var id: RequestID
    var report: ExperimentReport
    var configVersion: String
    /// For a fleet's answer (`variantctl stats --prometheus`): every host, and whether it was counted.
    var fleet: FleetState? = nil

    func writeMembers(into answer: inout JSONObjectWriter) {
        report.writeMembers(into: &answer, configVersion: configVersion)
        if let fleet { Self.write(fleet, into: &answer) }
    }

    private static func write(_ fleet: FleetState, into answer: inout JSONObjectWriter) {
        answer.object("fleet") { object in
            object.field("hosts_counted", fleet.hosts.count(where: \.counted))
            object.objects("hosts", fleet.hosts) { host, object in
                object.field("name", host.name)
                object.object("labels") { labels in
                    for (label, value) in host.labels {
                        labels.key(named: label)
                        labels.json.string(value)
                    }
                }
                object.field("phase", host.phase)
                object.field("fingerprint", host.fingerprint)
                object.field("config_version", host.configVersion)
                object.field("counted", host.counted)
                object.field("note", host.note)
            }
        }
    }
}

extension ExperimentReport {
    /// The `stats` answer for a fleet (`variantctl stats --prometheus`): the same members as one daemon's, and a
    /// `fleet` member naming every host and whether it was counted (docs/fleet.md).
    public func fleetAnswer(_ fleet: FleetState, configVersion: String) -> [UInt8] {
        var writer = JSONWriter(reservingCapacity: 4096)
        StatsAnswer(id: .null, report: self, configVersion: configVersion, fleet: fleet).write(to: &writer)
        return writer.bytes
    }

    fileprivate func writeMembers(into answer: inout JSONObjectWriter, configVersion: String) {
        answer.field("experiment", experiment.name)
        answer.field("status", experiment.status.rawValue)
        answer.field("mode", experiment.mode.rawValue)
        answer.field("config_version", configVersion)
        answer.object("phase") { object in
            object.field("number", phase.number)
            object.field("current", currentPhase)
            object.field("started_at", phase.startedAt.rfc3339)
            object.field("reason", phase.reason)
            object.field("fingerprint", phase.definition?.fingerprint)
        }
        answer.objects("variants", experiment.variants.indices) { index, object in
            writeVariant(
                experiment.variants[index], aggregate: aggregates[index], units: units[index],
                disabled: disabled[index], into: &object)
        }
        answer.objects("comparisons", comparisons.indices.filter { $0 != experiment.controlIndex }) { index, object in
            object.field("variant", experiment.variants[index].name)
            object.objects("metrics", comparisons[index]) { comparison, object in
                Self.write(comparison, into: &object)
            }
        }
        answer.object("chi_square") { object in
            object.object("error_rate", errorRateIndependence, members: Self.write)
            object.object("success", successIndependence, members: Self.write)
        }
        answer.object("sample_ratio", sampleRatio) { sampleRatio, object in
            object.field("on", "units")
            object.array("sampled_units") { array in sampledUnits.forEach { array.element($0) } }
            object.field("exact", unitsAreExact)
            object.field("statistic", sampleRatio.statistic)
            object.field("df", sampleRatio.degreesOfFreedom)
            object.field("p_value", sampleRatio.pValue)
            object.field("threshold", sampleRatio.threshold)
            object.field("mismatch", sampleRatio.mismatch)
        }
        answer.object("sample_size") { object in
            object.field("metric", primaryMetric)
            object.field("minimum_detectable_effect", minimumDetectableEffect)
            object.field("design_effect", designEffect)
            object.field("required_per_variant", requiredPerVariant)
            object.field("smallest_variant", smallestVariantSample)
            object.field("reached", requiredPerVariant.map { smallestVariantSample >= $0 } ?? false)
        }
        answer.object("recommendation") { object in
            object.field("verdict", verdict.rawValue)
            object.field("variant", recommendedVariant)
            object.field("reason", reason)
        }
        answer.objects("prompt_rules", promptRules) { count, object in
            object.field("prompt", count.prompt)
            object.field("prompt_version", count.version)
            object.field("rule", count.rule)
            object.field("action", count.action.rawValue)
            object.field("triggered", count.triggered)
        }
    }

    private func writeVariant(
        _ variant: Variant, aggregate: VariantAggregate, units: Double, disabled: DisabledTreatment?,
        into object: inout JSONObjectWriter
    ) {
        object.field("name", variant.name)
        object.field("control", variant.isControl)
        object.field("weight", Double(variant.weightBasisPoints) / 100)
        object.field("assignments", aggregate.assignments)
        object.field("units", Int(units.rounded()))
        object.field("records", aggregate.records)
        object.field("analysis", aggregate.isAnalysedByUnit ? "unit" : "record")
        object.field("shadow_records", aggregate.shadowRecords)
        object.field("out_of_range", aggregate.outOfRange)
        object.object("disabled", disabled) { disabled, object in
            object.field("automatic", disabled.automatic)
            object.field("at", disabled.at.rfc3339)
            object.field("reason", disabled.reason)
            object.field("by", disabled.source)
        }
        object.object("error_rate", aggregate.errors, members: Self.write)
        object.object("success", aggregate.success, members: Self.write)
        object.object("latency_ms") { latency in
            Self.write(aggregate.latencyMilliseconds, into: &latency)
            latency.field("p50", aggregate.latencyPercentile(50))
            latency.field("p95", aggregate.latencyPercentile(95))
            latency.field("p99", aggregate.latencyPercentile(99))
        }
        object.object("cost_usd", aggregate.costUSD, members: Self.write)
        object.object("tokens", aggregate.tokens, members: Self.write)
        object.field("custom", writing: { writer in
            writer.object(sortedBy: aggregate.custom) { moments, writer in writer.object { Self.write(moments, into: &$0) } }
        })
    }

    private static func write(_ counts: ProportionCounts, into object: inout JSONObjectWriter) {
        object.field("n", counts.trials)
        object.field("rate", counts.trials > 0 ? counts.rate : nil)
    }

    private static func write(_ moments: RunningMoments, into object: inout JSONObjectWriter) {
        object.field("n", moments.count)
        object.field("mean", moments.count > 0 ? moments.mean : nil)
        object.field("sd", moments.count > 1 ? moments.standardDeviation : nil)
    }

    private static func write(_ result: ChiSquareTestResult, into object: inout JSONObjectWriter) {
        object.field("statistic", result.statistic)
        object.field("df", result.degreesOfFreedom)
        object.field("p_value", result.pValue)
    }

    private static func write(_ metric: MetricComparison, into object: inout JSONObjectWriter) {
        let comparison = metric.comparison
        object.field("metric", metric.metric)
        object.field("test", metric.test)
        object.field("analysis", comparison.isByUnit ? "unit" : "record")
        object.field("control", comparison.control.mean)
        object.field("treatment", comparison.treatment.mean)
        object.field("difference", comparison.difference)
        object.field("standard_error", comparison.standardError)
        object.field("design_effect", comparison.designEffect)
        object.field("interval", writing: { write(comparison.interval, into: &$0) })
        object.field("always_valid_p_value", comparison.alwaysValidPValue)
        object.field("fixed_horizon_interval", writing: { write(comparison.fixedHorizonInterval, into: &$0) })
        object.field("fixed_horizon_p_value", comparison.pValue)
        object.field("relative_difference", metric.relativeDifference)
        object.field("statistic", comparison.statistic)
        object.field("df", comparison.degreesOfFreedom)
        if metric.test == "welch_t" {
            object.field("cohens_d", metric.cohensD)
        }
        object.field("verdict", metric.verdict)
    }

    /// `[lower,upper]`, or `null`.
    private static func write(_ interval: ConfidenceInterval?, into writer: inout JSONWriter) {
        guard let interval else { return writer.null() }
        writer.array { bounds in
            bounds.element(interval.lower)
            bounds.element(interval.upper)
        }
    }
}
