import PropertyBased
import Testing
@testable import VariantCore

/// The properties of PROTOCOL.md section 2, each over at least 100 random cases.
@Suite struct AssignmentPropertyTests {
    static let saltGenerator = Gen.letterOrNumber.string(of: 1...24)
    static let unitGenerator = Gen.letterOrNumber.string(of: 1...40)

    /// Raw material for weights: 2 to 5 numbers, turned into percentages by `weights(from:)`.
    static let rawWeightsGenerator = Gen.int(in: 5...50).array(of: 2...5)

    /// Integer weights (percent), each at least 5, summing to exactly 100, in proportion to `raw`.
    static func weights(from raw: [Int]) -> [Double] {
        let total = raw.reduce(0, +)
        var weights = raw.map { max(5, $0 * 100 / total) }
        let excess = weights.reduce(0, +) - 100
        weights[weights.indices.max { weights[$0] < weights[$1] }!] -= excess
        return weights.map(Double.init)
    }

    @Test func theSameInputAlwaysGivesTheSameVariant() async throws {
        await propertyCheck(count: 200, input: Self.saltGenerator, Self.unitGenerator, Self.rawWeightsGenerator) {
            salt, unit, raw in
            let weights = Self.weights(from: raw)
            let first = try! experiment(salt: salt, weights: weights, exposure: 50)
            let second = try! experiment(salt: salt, weights: weights, exposure: 50)
            let a = first.assign(unit: unit, attributes: noAttributes, now: someInstant)
            let b = second.assign(unit: unit, attributes: noAttributes, now: someInstant)
            #expect(a.variantIndex == b.variantIndex)
            #expect(a.reason == b.reason)
            #expect(Bucketing.bucket(salt: salt, label: .variant, unit: unit) < 10000)
        }
    }

    /// Each variant's observed share over 10 000 units lies within 5 standard errors of its weight: a healthy
    /// hash fails this about once in 3 million variant checks.
    @Test func observedSharesMatchTheWeights() async throws {
        let units = 10_000
        await propertyCheck(count: 100, input: Self.saltGenerator, Self.rawWeightsGenerator) { salt, raw in
            let weights = Self.weights(from: raw)
            let experiment = try! experiment(salt: salt, weights: weights)
            var counts = [Int](repeating: 0, count: weights.count)
            for index in 0..<units {
                counts[experiment.hashedVariantIndex(unit: "unit-\(index)")] += 1
            }
            for (variant, weight) in weights.enumerated() {
                let expected = weight / 100
                let observed = Double(counts[variant]) / Double(units)
                let standardError = (expected * (1 - expected) / Double(units)).squareRoot()
                #expect(abs(observed - expected) <= 5 * standardError, "variant \(variant): \(observed) vs \(expected)")
            }
        }
    }

    @Test func raisingExposureNeverMovesAnEnrolledUnit() async throws {
        await propertyCheck(
            count: 100, input: Self.saltGenerator, Gen.int(in: 0...10000), Gen.int(in: 0...10000), Self.rawWeightsGenerator
        ) { salt, first, second, raw in
            let weights = Self.weights(from: raw)
            let lower = try! experiment(salt: salt, weights: weights, exposure: Double(min(first, second)) / 100)
            let higher = try! experiment(salt: salt, weights: weights, exposure: Double(max(first, second)) / 100)
            for index in 0..<200 {
                let unit = "u\(index)"
                let before = lower.assign(unit: unit, attributes: noAttributes, now: someInstant)
                let after = higher.assign(unit: unit, attributes: noAttributes, now: someInstant)
                if before.enrolled {
                    #expect(after.enrolled)
                    #expect(after.variantIndex == before.variantIndex)
                }
            }
        }
    }

    /// Across 4 000 units, the 2×2 table of two 50/50 experiments with different salts passes a chi-square test of
    /// independence (df 1) at α = 10⁻⁶.
    @Test func differentSaltsAssignIndependently() async throws {
        await propertyCheck(count: 100, input: Self.saltGenerator, Self.saltGenerator) { firstSalt, secondSalt in
            guard firstSalt != secondSalt else { return }
            let first = try! experiment(salt: firstSalt, weights: [50, 50])
            let second = try! experiment(salt: secondSalt, weights: [50, 50])
            var table = [[0.0, 0.0], [0.0, 0.0]]
            let units = 4000
            for index in 0..<units {
                let unit = "user-\(index)"
                table[first.hashedVariantIndex(unit: unit)][second.hashedVariantIndex(unit: unit)] += 1
            }
            let rows = table.map { $0.reduce(0, +) }
            let columns = [table[0][0] + table[1][0], table[0][1] + table[1][1]]
            var chiSquare = 0.0
            for row in 0..<2 {
                for column in 0..<2 {
                    let expected = rows[row] * columns[column] / Double(units)
                    chiSquare += (table[row][column] - expected) * (table[row][column] - expected) / expected
                }
            }
            #expect(chiSquare < 23.93, "chi-square \(chiSquare) for salts \(firstSalt), \(secondSalt)")
        }
    }

    @Test func unitsOutsideTheExposureGetTheControlAndSaySo() async throws {
        await propertyCheck(count: 100, input: Self.saltGenerator, Self.unitGenerator) { salt, unit in
            let experiment = try! experiment(salt: salt, weights: [50, 50], exposure: 30)
            let assignment = experiment.assign(unit: unit, attributes: noAttributes, now: someInstant)
            let exposed = Bucketing.bucket(salt: salt, label: .exposure, unit: unit) < 3000
            #expect(assignment.enrolled == exposed)
            if !exposed {
                #expect(assignment.variantIndex == experiment.controlIndex)
                #expect(assignment.reason == .outsideExposure)
            }
        }
    }
}
