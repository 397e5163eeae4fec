import Crypto

/// The hash at the heart of assignment (PROTOCOL.md, section 2, "Buckets").
public enum Bucketing {
    /// Buckets per experiment: one per basis point.
    public static let bucketCount: UInt64 = 10_000

    /// Which decision a bucket is for; each label hashes independently of the other.
    public enum Label: String, Sendable {
        case exposure
        case variant
    }

    /// `SHA-256(salt ‖ 0x00 ‖ label ‖ 0x00 ‖ unit)`, its first 8 bytes big-endian, modulo 10000.
    public static func bucket(salt: String, label: Label, unit: String) -> Int {
        var hasher = SHA256()
        var salt = salt
        var unit = unit
        salt.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        var label = label.rawValue
        let separator: [UInt8] = [0]
        separator.withUnsafeBytes { separatorBytes in
            hasher.update(bufferPointer: separatorBytes)
            label.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
            hasher.update(bufferPointer: separatorBytes)
        }
        unit.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        let digest = hasher.finalize()
        let prefix = digest.withUnsafeBytes { bytes in
            bytes.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
        return Int(prefix % bucketCount)
    }

    /// The index of the variant whose running sum of weights first exceeds `bucket`, or nil when the weights
    /// do not cover it (which validation rules out: they sum to 10000).
    public static func variantIndex(bucket: Int, weightsInBasisPoints weights: some Sequence<Int>) -> Int? {
        var runningSum = 0
        for (index, weight) in weights.enumerated() {
            runningSum += weight
            if bucket < runningSum { return index }
        }
        return nil
    }
}
