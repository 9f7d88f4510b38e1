import Logging
#if canImport(Glibc)
import Glibc
#endif

/// The process-wide logger. Executables call `RastLog.bootstrap` once; libraries log through
/// `RastLog.logger`. `RAST_DEBUG=1` (or `--verbose`) shows debug lines, among them every
/// external command and its exit status.
package enum RastLog {
    package static let logger = Logger(label: "rast")

    package static var debugRequested: Bool {
        if let value = getenv("RAST_DEBUG").map({ String(cString: $0) }) {
            return !value.isEmpty && value != "0"
        }
        return false
    }

    package static func bootstrap(verbose: Bool = false) {
        let level: Logger.Level = (verbose || debugRequested) ? .debug : .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
