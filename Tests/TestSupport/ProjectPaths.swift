import Foundation

/// Locations inside the repository, for tests that use its recipes, profiles and PKGBUILDs.
public enum ProjectPaths {
    /// The repository root (found from this file's path, so the working directory does not matter).
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    public static var kernelProfiles: String { root + "/kernel-profiles" }
    public static var recipes: String { root + "/recipes" }

    /// The kernel source every kernel test uses (Debian's linux-source-6.1).
    public static let debianKernelSource = "/usr/src/linux-source-6.1.tar.xz"
}
