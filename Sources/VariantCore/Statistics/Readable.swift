/// Numbers for people.
public enum Readable {
    /// A number as a person would type it: whole numbers without a fraction (`86400000`, not `8.64e7` or
    /// `86400000.0`), others in Swift's shortest round-tripping form.
    public static func number(_ value: Double) -> String {
        value.isFinite && value == value.rounded() && abs(value) < 1e16 ? "\(Int(value))" : "\(value)"
    }

    /// A number to four significant digits, written from its rounded digits so that no binary noise shows
    /// (`7.707e-154`, not `7.706999999999995e-154`): positional from 10⁻⁶ to below 10¹⁵, with an exponent
    /// outside that.
    public static func fourSignificantDigits(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "\(value)" }
        var exponent = floorLog10(abs(value))
        var digits = Int(scaled(abs(value), byPowerOfTen: 3 - exponent).rounded())
        if digits >= 10_000 {  // 9999.5 rounds up a place
            digits /= 10
            exponent += 1
        }
        let sign = value < 0 ? "-" : ""
        let text = String(digits)  // four digits
        guard exponent >= -6, exponent < 15 else {
            return sign + trimmed(text.prefix(1) + "." + text.dropFirst()) + "e\(exponent)"
        }
        if exponent >= 3 { return sign + text + String(repeating: "0", count: exponent - 3) }
        if exponent >= 0 {
            let whole = text.prefix(exponent + 1)
            return sign + trimmed(whole + "." + text.dropFirst(exponent + 1))
        }
        return sign + trimmed("0." + String(repeating: "0", count: -exponent - 1) + text)
    }

    /// A decimal without trailing zeros after its point, and without the point when nothing follows it.
    private static func trimmed(_ decimal: String) -> String {
        guard decimal.contains(".") else { return decimal }
        var text = Substring(decimal)
        while text.last == "0" { text = text.dropLast() }
        if text.last == "." { text = text.dropLast() }
        return String(text)
    }

    private static func floorLog10(_ value: Double) -> Int {
        var exponent = 0
        var scaled = value
        while scaled >= 10 { scaled /= 10; exponent += 1 }
        while scaled < 1 { scaled *= 10; exponent -= 1 }
        return exponent
    }

    /// `value` × 10^`exponent`, in two steps where 10^`exponent` alone would overflow (subnormal values).
    private static func scaled(_ value: Double, byPowerOfTen exponent: Int) -> Double {
        exponent > 300 ? value * pow10(300) * pow10(exponent - 300) : value * pow10(exponent)
    }

    private static func pow10(_ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<abs(exponent) { result *= 10 }
        return exponent < 0 ? 1 / result : result
    }
}
