import ArgumentParser
import CLinux
import SystemPackage
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The shared `main` of rast, rast-build and rast-install: logging, signal handling, help
/// when run with no arguments, and errors printed as one clear line instead of a trace.
package enum EntryPoint {
    package static func run<Root: ParsableCommand>(_ root: Root.Type, programName: String,
                                                  arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> Never {
        // (`rast container run -v` is a volume, not --verbose.)
        let verbose = arguments.contains("--verbose") || arguments.contains("-v") && !["container", "ctr"].contains(arguments.first ?? "")
        // Line by line into pipes and logs too, so that a note such as "waiting for another
        // rast command" shows when it is written, not when the process ends.
        rast_line_buffer_stdout()
        RastLog.bootstrap(verbose: verbose)
        if Privileges.isRoot {
            // Whatever we mount is released with the process, also when it is killed.
            do { try Mounts.enterPrivateNamespace() } catch { RastLog.logger.debug("\(error)") }
        }
        Cancellation.shared.installSignalHandlers()
        if arguments.isEmpty {
            print(Root.helpMessage())
            exit(0)
        }
        let status = execute(root, programName: programName, arguments: arguments)
        exit(status)
    }

    /// Parses and runs one invocation; returns the exit status. Used by tests as well.
    package static func execute<Root: ParsableCommand>(_ root: Root.Type, programName: String, arguments: [String]) -> Int32 {
        var command: ParsableCommand
        do {
            command = try Root.parseAsRoot(arguments)
        } catch {
            let message = Root.fullMessage(for: error)
            let code = Root.exitCode(for: error)
            if !message.isEmpty {
                if code == .success { print(message) } else { printError(message) }
            }
            return code.rawValue
        }
        do {
            try command.run()
            return 0
        } catch let error as InterruptedError {
            printError("\(programName): \(error); cleaned up")
            return 130
        } catch {
            // Help, usage and validation errors come from ArgumentParser (some through its
            // internal types): let it format them. Everything else is ours: one clear line.
            if error is ExitCode || error is CleanExit || error is ValidationError
                || String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") {
                let message = Root.fullMessage(for: error)
                let code = Root.exitCode(for: error)
                if !message.isEmpty {
                    if code == .success { print(message) } else { printError(message) }
                }
                return code.rawValue
            }
            // Whatever failed after SIGINT or SIGTERM failed because of it: exit as interrupted.
            if Cancellation.shared.isCancelled {
                printError("\(programName): \(error)")
                return 130
            }
            printError("\(programName): error: \(error)")
            return 1
        }
    }

    package static func printError(_ text: String) {
        let line = text.hasSuffix("\n") ? text : text + "\n"
        _ = try? FileDescriptor.standardError.writeAll(line.utf8)
    }
}

/// `--verbose` for every command; `RAST_DEBUG=1` does the same.
package struct GlobalOptions: ParsableArguments {
    @Flag(name: [.customShort("v"), .long], help: "Show debug output, including every external command and its exit status (same as RAST_DEBUG=1).")
    package var verbose = false

    package init() {}
}
