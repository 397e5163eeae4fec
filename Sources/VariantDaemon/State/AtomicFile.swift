import Glibc

/// Writes a whole file so that a reader, or the next start after a crash at any instant, sees either the old
/// contents or the new ones, never a mix: write a uniquely named temporary file in the same directory, fsync it,
/// rename it over the target, fsync the directory. Used for the state file and the config cache.
enum AtomicFile {
    struct WriteError: Error, CustomStringConvertible {
        var description: String
    }

    /// - Throws: `WriteError` naming the step and the system's reason; the target is unchanged then.
    static func write(_ bytes: [UInt8], to path: String, mode: mode_t = 0o640) throws(WriteError) {
        var template = Array((path + ".tmp-XXXXXX").utf8CString)
        let descriptor = mkstemp(&template)
        guard descriptor >= 0 else { throw failure("create a temporary file beside \(path)") }
        let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        do throws(WriteError) {
            var offset = 0
            while offset < bytes.count {
                let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
                if written < 0 {
                    if errno == EINTR { continue }
                    throw failure("write \(temporary)")
                }
                offset += written
            }
            guard fchmod(descriptor, mode) == 0, fsync(descriptor) == 0 else { throw failure("fsync \(temporary)") }
            guard close(descriptor) == 0 else {
                unlink(temporary)
                throw failure("close \(temporary)")
            }
        } catch {
            close(descriptor)
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            let error = failure("rename \(temporary) to \(path)")
            unlink(temporary)
            throw error
        }
        let directory = parentDirectory(of: path)
        let directoryDescriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryDescriptor >= 0 else { throw failure("open \(directory)") }
        defer { close(directoryDescriptor) }
        guard fsync(directoryDescriptor) == 0 else { throw failure("fsync \(directory)") }
    }

    /// Creates a directory and its parents if missing, each created one with exactly `mode` (set after `mkdir`,
    /// so the process's umask cannot narrow it).
    static func createDirectory(_ path: String, mode: mode_t = 0o750) throws(WriteError) {
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, mode) == 0 {
                if chmod(prefix, mode) != 0 { throw failure("set the mode of \(prefix)") }
            } else if errno != EEXIST {
                throw failure("create directory \(prefix)")
            }
        }
    }

    private static func failure(_ step: String) -> WriteError {
        WriteError(description: "cannot \(step): \(String(cString: strerror(errno)))")
    }

    private static func parentDirectory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
