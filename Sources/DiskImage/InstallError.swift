import SystemSupport

/// Why an installation was refused or failed, said so that a person can act on it.
package enum InstallError: CausedError, CustomStringConvertible, Sendable {
    /// An option's value cannot be used; nothing was written. `value` is nil for secrets.
    case invalidOption(option: String, value: String?, reason: String)
    /// The image is not an image rast-install can install; `cause` is the error behind the
    /// reason, when there is one.
    case invalidImage(path: String, reason: String, cause: (any Error)? = nil)
    /// The image's SHA-256 is not the one its manifest or SHA256SUMS records.
    case checksumMismatch(path: String, recordedIn: String, expected: String, actual: String)
    /// The target may not be written.
    case refused(target: String, reason: String)
    /// The target read back differs from the image.
    case verificationFailed(target: String, expected: String, actual: String)
    /// A block device target failed after writing had begun: it holds no usable system.
    /// `cause` is the error that stopped it.
    case incomplete(target: String, step: String, reason: String, cause: any Error)
    /// SIGINT or SIGTERM stopped the installation to a file; the file is as it was.
    case interrupted(target: String, step: String, existed: Bool)

    package var description: String {
        switch self {
        case .invalidOption(let option, let value, let reason):
            let shown = value.map { " '\($0)'" } ?? ""
            return "\(option)\(shown): \(reason); nothing was written"
        case .invalidImage(let path, let reason, _):
            return "\(path) is not an installable rastOS image: \(reason)"
        case .checksumMismatch(let path, let recordedIn, let expected, let actual):
            return "\(path) is damaged or not the image \(recordedIn) describes: its SHA-256 is \(actual), \(recordedIn) records \(expected); nothing was written"
        case .refused(let target, let reason):
            return "refusing to write \(target): \(reason)"
        case .verificationFailed(let target, let expected, let actual):
            return "\(target) does not read back as the image (SHA-256 \(actual), the image gives \(expected)): the disk may be failing"
        case .incomplete(let target, let step, let reason, _):
            return "\(target) is incomplete and holds no usable system (\(step) failed: \(reason)); run rast-install again"
        case .interrupted(let target, let step, let existed):
            return "interrupted while \(step); \(target) " + (existed ? "is unchanged" : "was not created")
                + " (the installation was written to a temporary file beside it, which was removed)"
        }
    }
}

extension InstallError {
    /// The error that stopped an incomplete installation.
    package var cause: (any Error)? {
        switch self {
        case .incomplete(_, _, _, let cause): cause
        case .invalidImage(_, _, let cause): cause
        default: nil
        }
    }
}
