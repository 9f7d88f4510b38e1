import Foundation

/// Locations inside the repository, for tests that use its recipes, profiles and PKGBUILDs.
package enum ProjectPaths {
    /// The repository root (found from this file's path, so the working directory does not matter).
    package static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    package static var kernelProfiles: String { root + "/kernel-profiles" }
    package static var recipes: String { root + "/recipes" }

    /// The kernel source every kernel test uses (Debian's linux-source-6.1).
    package static let debianKernelSource = "/usr/src/linux-source-6.1.tar.xz"
}
