import Foundation

/// The floor server: udsfloor.c's own epoll server (a C server answering each line with a fixed ~150-byte line,
/// parsing nothing), run in a process of its own and measured by the benchmark's client like the other servers.
///
/// udsfloor.c runs its server and its C client in one process; the benchmark compiles it with a `main` of its
/// own (`floorserver.c`, written next to the executable) that binds the socket and runs udsfloor's `server`
/// function, unchanged, with udsfloor's flags (`gcc -O2 -pthread`).
enum FloorServer {
    /// Compiles the floor server from `source` into `directory`; returns the executable's path.
    static func compile(source: String, into directory: String) throws -> String {
        let absoluteSource = URL(fileURLWithPath: source).standardizedFileURL.path
        let wrapper = directory + "/floorserver.c"
        let text = """
            /* udsfloor.c's server alone: binds SOCKETPATH and serves until killed. */
            #define main udsfloor_main
            #include "\(absoluteSource)"
            #undef main
            int main(int argc, char **argv) {
              if (argc != 2) { fprintf(stderr, "usage: floorserver SOCKETPATH\\n"); return 2; }
              signal(SIGPIPE, SIG_IGN);
              unlink(argv[1]);
              int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
              struct sockaddr_un a = {.sun_family = AF_UNIX};
              strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
              if (bind(lfd, (void *)&a, sizeof a) || listen(lfd, 512)) { perror("bind"); return 1; }
              server(&lfd);
              return 0;
            }

            """
        guard FileManager.default.createFile(atPath: wrapper, contents: Data(text.utf8)) else {
            throw BenchError("cannot write \(wrapper)")
        }
        let executable = directory + "/floorserver"
        let result = try runToCompletion("gcc", ["-O2", "-pthread", "-o", executable, wrapper])
        guard result.status == 0 else {
            throw BenchError("compiling \(source) failed (gcc exit status \(result.status)):\n\(result.output)")
        }
        return executable
    }
}

/// Runs `executable` (looked up on `PATH` if it has no slash) to completion and returns its exit status and its
/// standard output and standard error, interleaved; with `separateErrors`, standard error goes to the
/// benchmark's own (progress messages) and only standard output is returned.
func runToCompletion(_ executable: String, _ arguments: [String], separateErrors: Bool = false) throws
    -> (status: Int32, output: String)
{
    let process = Process()
    if executable.contains("/") {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
    } else {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
    }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = separateErrors ? FileHandle.standardError : pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    ChildProcesses.record(process.processIdentifier, as: .helper)
    defer { ChildProcesses.record(0, as: .helper) }
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
}
