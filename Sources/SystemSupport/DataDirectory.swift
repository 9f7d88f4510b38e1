import Foundation

/// Where rast's data files live (boot-loader templates, kernel profiles, PKGBUILDs):
/// `$RAST_DATA_DIR`; else the source checkout the running executable was built in (found by
/// walking up from the executable); else `/usr/share/rast`, where the rast package installs them.
package enum DataDirectory {
    package static let installed = "/usr/share/rast"

    package static func locate(containing marker: String = "bootloader/grub/grub.cfg") -> String {
        if let dir = ProcessInfo.processInfo.environment["RAST_DATA_DIR"], !dir.isEmpty { return dir }
        var url = URL(fileURLWithPath: CommandLine.arguments.first.map(resolve) ?? "/")
        for _ in 0..<6 {
            url.deleteLastPathComponent()
            if Files.exists(url.path + "/" + marker) { return url.path }
        }
        let cwd = FileManager.default.currentDirectoryPath
        if Files.exists(cwd + "/" + marker) { return cwd }
        return installed
    }

    private static func resolve(_ argv0: String) -> String {
        if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return link }
        return argv0
    }
}
