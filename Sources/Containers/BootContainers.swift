import Foundation
import SystemSupport

/// The containers a system starts at boot (`/etc/rast/containers.json`, written by rast-build
/// from a recipe's `[[containers]]`; the boot hook runs `rast container boot`). It lives in
/// /etc, so each snapshot has its own list.
package struct BootContainers: Codable, Sendable, Equatable {
    package struct Entry: Codable, Sendable, Equatable {
        /// The image's name in the store.
        package var image: String
        /// How to run it; `name` is set and `detach` is true.
        package var options: RunOptions

        package init(image: String, options: RunOptions) {
            self.image = image
            self.options = options
        }
    }

    package static let path = "/etc/rast/containers.json"
    /// After 40-rast-services.sh, which starts s6-svscan when the system has services.
    package static let hookName = "45-rast-containers.sh"

    package var version = 1
    package var containers: [Entry]

    package init(containers: [Entry]) {
        self.containers = containers
    }

    package static func load(_ path: String = BootContainers.path) throws -> BootContainers {
        do {
            let list = try JSONDecoder().decode(BootContainers.self, from: Data(try Files.read(path)))
            guard list.version == 1 else { throw ContainerError.record(path: path, reason: "format version \(list.version) is not known to this rast") }
            return list
        } catch let error as ContainerError {
            throw error
        } catch {
            throw ContainerError.record(path: path, reason: "cannot be read: \(error)")
        }
    }

    package func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try Files.createDirectory((path as NSString).deletingLastPathComponent)
        try Files.writeAtomically(path, bytes: Array(try encoder.encode(self)))
    }

    /// The boot hook (for /etc/rc.d; rcS runs the hooks in name order, before the
    /// boot test's 50-rast-check.sh).
    package static let hook = """
        #!/bin/sh
        # Starts the containers /etc/rast/containers.json defines (a recipe's [[containers]] with a name).
        [ -r \(path) ] || exit 0
        # Containers with a restart policy run under s6: start s6-svscan when no services did.
        if grep -q '"restart"' \(path) && command -v s6-svscan >/dev/null 2>&1 && [ ! -p \(RestartSupervision.defaultScanDirectory)/.s6-svscan/control ]; then
            mkdir -p \(RestartSupervision.defaultScanDirectory)
            setsid s6-svscan \(RestartSupervision.defaultScanDirectory) </dev/null >/dev/console 2>&1 &
        fi
        rast container boot || echo "\(hookName): some containers did not start"

        """
}
