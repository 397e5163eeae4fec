import Glibc

/// Reads a whole local file (a fallback document, a config to validate) with the system's reason on failure.
public enum LocalFile {
    /// Why a file could not be read: the system's reason (`No such file or directory`, `Permission denied`).
    public struct ReadError: Error, CustomStringConvertible {
        public var description: String
    }

    /// - Throws: `ReadError` when the file cannot be opened or read.
    public static func bytes(atPath path: String) throws(ReadError) -> [UInt8] {
        guard let file = fopen(path, "rb") else { throw ReadError(description: String(cString: strerror(errno))) }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, $0.count, file) }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        if ferror(file) != 0 { throw ReadError(description: String(cString: strerror(errno))) }
        return bytes
    }
}
