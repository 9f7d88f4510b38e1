import Foundation
import Packages
import SystemSupport

/// Writes the staged kernel as an Arch package, so that the root filesystem stage installs it
/// from the build's local repository like any other package.
enum KernelPackageWriter {
    static func write(staging: String, name: String, version: String, release: String, into directory: String) throws -> String {
        let metadata = PackageMetadata(
            name: name, version: version, release: "1",
            description: "The Linux kernel \(release) and modules, built by rast-build",
            url: "https://www.kernel.org/", licenses: ["GPL-2.0-only"],
            provides: ["linux=\(version)"], packager: "rast-build <rast-build@localhost>")
        return try PackageArchive.write(stagingDirectory: staging, metadata: metadata, into: directory)
    }
}
