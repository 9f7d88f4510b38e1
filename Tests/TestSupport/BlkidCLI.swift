import Foundation
import SystemSupport

/// util-linux's `blkid` command line tool: the independent reader that the Blkid and Fdisk
/// tests compare with.
package enum BlkidCLI {
    /// `blkid -p -o export`: the command line tool's low-level probe, as a dictionary (empty
    /// when blkid finds nothing).
    package static func export(_ path: String) throws -> [String: String] {
        let result = try Command("blkid", ["-p", "-o", "export", path]).run(check: false)
        var values: [String: String] = [:]
        for line in result.standardOutput.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            values[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        return values
    }
}
