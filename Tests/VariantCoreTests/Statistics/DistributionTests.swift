import Foundation
import Testing

@testable import VariantCore

/// The reference values of `distribution-vectors.json`, made by `protocol/reference/generate_distribution_vectors.py`
/// with mpmath at 60 digits (comparisons with scipy).
struct DistributionVectors: Decodable {
    struct NormalSection: Decodable {
        var cdf: [[Double]]
        var survival: [[Double]]
        var quantile: [[Double]]
        var inverseSurvival: [[Double]]
    }
    struct Family: Decodable {
        var degreesOfFreedom: Double
        var cdf: [[Double]]
        var survival: [[Double]]
        var quantile: [[Double]]
    }
    struct Comparisons: Decodable {
        struct Welch: Decodable {
            var control: [Double]
            var treatment: [Double]
            var t: Double
            var pValue: Double
            var degreesOfFreedom: Double
            var lower95: Double
            var upper95: Double
        }
        struct Contingency: Decodable {
            var table: [[Double]]
            var statistic: Double
            var pValue: Double
            var degreesOfFreedom: Int
        }
        struct GoodnessOfFit: Decodable {
            var observed: [Int]
            var weights: [Double]
            var statistic: Double
            var pValue: Double
        }
        struct TwoProportion: Decodable {
            var controlTrials: Int
            var controlSuccesses: Double
            var treatmentTrials: Int
            var treatmentSuccesses: Double
            var z: Double
            var pValue: Double
            var lower95: Double
            var upper95: Double
        }
        var welch: [Welch]
        var contingency: [Contingency]
        var goodnessOfFit: [GoodnessOfFit]
        var twoProportion: [TwoProportion]
    }
    var normal: NormalSection
    var studentT: [Family]
    var chiSquare: [Family]
    var comparisons: Comparisons

    static func load() throws -> DistributionVectors {
        let bytes = try repositoryFile("Tests/VariantCoreTests/Statistics/distribution-vectors.json")
        return try JSONDecoder().decode(DistributionVectors.self, from: Data(bytes))
    }
}

/// Relative error, with an absolute floor for reference values at zero.
func relativeError(_ value: Double?, _ reference: Double) -> Double {
    guard let value, value.isFinite else { return .infinity }
    if reference == 0 { return abs(value) }
    return abs(value - reference) / abs(reference)
}

@Suite struct DistributionTests {
    static let vectors = Result { try DistributionVectors.load() }
    /// Bound on the relative error for every reference value (the brief asks for 1e-6; the code does far better).
    static let tolerance = 1e-10

    @Test func classicTableValues() throws {
        #expect(relativeError(Normal.quantile(0.975), 1.959_963_984_540_054) < 1e-14)
        #expect(relativeError(Normal.survival(10), 7.619_853_024_160_527e-24) < 1e-12)
        #expect(relativeError(StudentT(degreesOfFreedom: 1)?.quantile(0.975), 12.706_204_736_174_7) < 1e-12)
        #expect(relativeError(StudentT(degreesOfFreedom: 2)?.quantile(0.975), 4.302_652_729_749_464) < 1e-12)
        #expect(relativeError(StudentT(degreesOfFreedom: 10)?.quantile(0.975), 2.228_138_851_986_274) < 1e-12)
        #expect(relativeError(StudentT(degreesOfFreedom: 30)?.quantile(0.95), 1.697_260_886_593_877) < 1e-12)
        #expect(relativeError(ChiSquare(degreesOfFreedom: 1)?.quantile(0.95), 3.841_458_820_694_124) < 1e-12)
        #expect(relativeError(ChiSquare(degreesOfFreedom: 2)?.quantile(0.95), 5.991_464_547_107_979) < 1e-12)
        #expect(relativeError(ChiSquare(degreesOfFreedom: 10)?.quantile(0.99), 23.209_251_158_954_356) < 1e-12)
    }

    @Test func normalMatchesReferenceValues() throws {
        let normal = try Self.vectors.get().normal
        for pair in normal.cdf {
            #expect(relativeError(Normal.cdf(pair[0]), pair[1]) < Self.tolerance, "cdf(\(pair[0]))")
        }
        for pair in normal.survival {
            #expect(relativeError(Normal.survival(pair[0]), pair[1]) < Self.tolerance, "survival(\(pair[0]))")
        }
        for pair in normal.quantile {
            #expect(relativeError(Normal.quantile(pair[0]), pair[1]) < Self.tolerance, "quantile(\(pair[0]))")
        }
        for pair in normal.inverseSurvival {
            #expect(relativeError(Normal.inverseSurvival(pair[0]), pair[1]) < Self.tolerance, "isf(\(pair[0]))")
        }
    }

    @Test func studentTMatchesReferenceValues() throws {
        for family in try Self.vectors.get().studentT {
            let distribution = try #require(StudentT(degreesOfFreedom: family.degreesOfFreedom))
            let ν = family.degreesOfFreedom
            for pair in family.cdf {
                #expect(relativeError(distribution.cdf(pair[0]), pair[1]) < Self.tolerance, "ν \(ν) cdf(\(pair[0]))")
            }
            for pair in family.survival {
                #expect(
                    relativeError(distribution.survival(pair[0]), pair[1]) < Self.tolerance,
                    "ν \(ν) sf(\(pair[0]))"
                )
            }
            for pair in family.quantile {
                #expect(
                    relativeError(distribution.quantile(pair[0]), pair[1]) < Self.tolerance,
                    "ν \(ν) q(\(pair[0]))"
                )
            }
        }
    }

    @Test func chiSquareMatchesReferenceValues() throws {
        for family in try Self.vectors.get().chiSquare {
            let distribution = try #require(ChiSquare(degreesOfFreedom: family.degreesOfFreedom))
            let k = family.degreesOfFreedom
            for pair in family.cdf {
                #expect(relativeError(distribution.cdf(pair[0]), pair[1]) < Self.tolerance, "k \(k) cdf(\(pair[0]))")
            }
            for pair in family.survival {
                #expect(
                    relativeError(distribution.survival(pair[0]), pair[1]) < Self.tolerance,
                    "k \(k) sf(\(pair[0]))"
                )
            }
            for pair in family.quantile {
                #expect(
                    relativeError(distribution.quantile(pair[0]), pair[1]) < Self.tolerance,
                    "k \(k) q(\(pair[0]))"
                )
            }
        }
    }

    @Test func quantilesInvertTheirDistributions() {
        for ν in [0.7, 4.5, 250.0] {
            let t = StudentT(degreesOfFreedom: ν)!
            for p in [1e-9, 0.1, 0.45, 0.8, 0.999] {
                #expect(relativeError(t.cdf(t.quantile(p)!), p) < 1e-12)
                #expect(relativeError(t.survival(t.inverseSurvival(p)!), p) < 1e-12)
            }
            let chi = ChiSquare(degreesOfFreedom: ν)!
            for p in [1e-9, 0.1, 0.45, 0.8, 0.999] {
                #expect(relativeError(chi.cdf(chi.quantile(p)!), p) < 1e-12)
                #expect(relativeError(chi.survival(chi.inverseSurvival(p)!), p) < 1e-12)
            }
        }
    }

    @Test func invalidArgumentsGiveNilNotNaN() {
        #expect(StudentT(degreesOfFreedom: 0) == nil)
        #expect(StudentT(degreesOfFreedom: -.nan) == nil)
        #expect(ChiSquare(degreesOfFreedom: -1) == nil)
        #expect(Normal.quantile(0) == nil && Normal.quantile(1) == nil && Normal.quantile(.nan) == nil)
        #expect(StudentT(degreesOfFreedom: 3)!.quantile(1) == nil)
        #expect(ChiSquare(degreesOfFreedom: 3)!.quantile(0) == nil)
        #expect(ChiSquare(degreesOfFreedom: 3)!.survival(1e6) == 0)
        #expect(StudentT(degreesOfFreedom: 3)!.survival(.infinity) == 0)
    }
}
