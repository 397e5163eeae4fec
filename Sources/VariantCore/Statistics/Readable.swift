/// Numbers for people.
public enum Readable {
    /// A number to four significant digits, without exponent noise for ordinary magnitudes.
    public static func fourSignificantDigits(_ value: Double) -> String {
        guard value.isFinite, value != 0 else { return "\(value)" }
        let scale = pow10(3 - floorLog10(abs(value)))
        let rounded = (value * scale).rounded() / scale
        return rounded == rounded.rounded() && abs(rounded) < 1e15 ? "\(Int(rounded))" : "\(rounded)"
    }

    private static func floorLog10(_ value: Double) -> Int {
        var exponent = 0
        var scaled = value
        while scaled >= 10 { scaled /= 10; exponent += 1 }
        while scaled < 1 { scaled *= 10; exponent -= 1 }
        return exponent
    }

    private static func pow10(_ exponent: Int) -> Double {
        var result = 1.0
        for _ in 0..<abs(exponent) { result *= 10 }
        return exponent < 0 ? 1 / result : result
    }
}
