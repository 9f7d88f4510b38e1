#if canImport(Glibc)
import Glibc
#endif

/// rastOS's version, printed by `--version` of every program.
package enum RastVersion {
    package static let string = "0.1.0"
}

/// A failed system call: what was attempted, on what, and the errno text.
package struct SystemError: Error, CustomStringConvertible, Sendable {
    package let operation: String
    package let path: String?
    package let errno: Int32

    package init(_ operation: String, path: String? = nil, errno: Int32 = Glibc.errno) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    package var description: String {
        let reason = String(cString: strerror(errno))
        if let path { return "\(operation) \(path): \(reason)" }
        return "\(operation): \(reason)"
    }

    /// Runs `body` and throws a `SystemError` when it returns -1.
    @discardableResult
    package static func check(_ operation: String, path: String? = nil, _ body: () -> Int32) throws -> Int32 {
        let result = body()
        if result == -1 { throw SystemError(operation, path: path) }
        return result
    }
}

/// A problem the user can fix, said in one sentence (no stack of wrapped errors). When it
/// explains a typed error, it carries that error as its `cause`, so that code (and tests) can
/// ask what went wrong underneath without reading the sentence.
package struct UserError: Error, CustomStringConvertible, Sendable {
    package let message: String
    /// The error this one explains, if any.
    package let cause: (any Error)?

    package init(_ message: String, cause: (any Error)? = nil) {
        self.message = message
        self.cause = cause
    }

    package var description: String { message }
}

/// An error that can say which error caused it.
package protocol CausedError: Error {
    var cause: (any Error)? { get }
}

extension UserError: CausedError {}

extension Error {
    /// This error, or the first error of type `E` along its chain of causes.
    package func underlying<E: Error>(_ type: E.Type) -> E? {
        var current: (any Error)? = self
        while let error = current {
            if let match = error as? E { return match }
            current = (error as? any CausedError)?.cause
        }
        return nil
    }
}

/// Says whether the process runs as root, and a one-sentence error when it does not.
package enum Privileges {
    package static var isRoot: Bool { geteuid() == 0 }

    package static func requireRoot(for what: String) throws {
        guard isRoot else {
            throw UserError("\(what) needs root privileges; run it again with sudo or as root.")
        }
    }
}
