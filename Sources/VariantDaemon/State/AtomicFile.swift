import Glibc

/// Writes a whole file so that a reader, or the next start after a crash at any instant, sees either the old
/// contents or the new ones, never a mix: write a temporary file in the same directory, fsync it, rename it over
/// the target, fsync the directory.
enum AtomicFile {
    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    /// - Throws: `WriteError` naming the step and the system's reason; the target is unchanged then.
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o640) throws(WriteError) {
        let directory = parentDirectory(of: path)
        let temporaryPath = directory + "/." + fileName(of: path) + ".tmp"
        let descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw failure("create \(temporaryPath)") }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                let error = failure("write \(temporaryPath)")
                close(descriptor)
                unlink(temporaryPath)
                throw error
            }
            written += count
        }
        guard fsync(descriptor) == 0 else {
            let error = failure("fsync \(temporaryPath)")
            close(descriptor)
            unlink(temporaryPath)
            throw error
        }
        close(descriptor)
        guard rename(temporaryPath, path) == 0 else {
            let error = failure("rename \(temporaryPath) to \(path)")
            unlink(temporaryPath)
            throw error
        }
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Creates a directory and its parents if missing.
    static func createDirectory(_ path: String, mode: mode_t = 0o750) throws(WriteError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) != 0 && errno != EEXIST { throw failure("create directory \(prefix)") }
        }
    }

    private static func failure(_ step: String) -> WriteError {
        WriteError(description: "cannot \(step): \(String(cString: strerror(errno)))")
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    private static func fileName(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }
}
