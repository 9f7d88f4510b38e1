import Foundation
import SystemSupport

/// Writes the staged kernel as an Arch package (filled in when the Packages module's
/// package writer lands).
enum KernelPackageWriter {
    static func write(staging: String, name: String, version: String, release: String, into directory: String) throws -> String {
        throw UserError("kernel packaging is not available yet")
    }
}
