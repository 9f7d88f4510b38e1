import Foundation
import SystemSupport
import Testing
import TestSupport

/// rast-install writes an image to a disk; it shares the disk, boot loader and account code
/// with rast-build through ImageSupport, not through the pipeline, so it links none of the
/// libraries only building needs (package management, git, HTTP, archives).
@Suite struct LinkageTests {
    static let buildingOnly = ["libalpm", "libgit2", "libcurl", "libarchive"]

    /// The shared libraries `ldd` finds for a built program (debug build), by file name.
    func sharedLibraries(of program: String) throws -> [String] {
        let binary = CompletionTests.root + "/.build/debug/" + program
        try Require.file(binary, hint: "build it first with `swift build --build-tests`")
        try Require.programs("ldd")
        let output = try Command("ldd", [binary]).output()
        return output.split(separator: "\n").compactMap { line in
            line.split(whereSeparator: \.isWhitespace).first.map(String.init)
        }
    }

    func linked(_ libraries: [String], prefix: String) -> [String] {
        libraries.filter { $0.hasPrefix(prefix + ".") || $0.hasPrefix(prefix + "-") }
    }

    @Test func rastInstallLinksNoBuildingLibrary() throws {
        let libraries = try sharedLibraries(of: "rast-install")
        #expect(!linked(libraries, prefix: "libblkid").isEmpty, "ldd lists rast-install's libraries (libblkid among them): \(libraries)")
        for library in LinkageTests.buildingOnly {
            #expect(linked(libraries, prefix: library).isEmpty, "rast-install links \(library): \(linked(libraries, prefix: library))")
        }
    }

    /// The check above can see these libraries: rast-build links all of them.
    @Test func rastBuildLinksThem() throws {
        let libraries = try sharedLibraries(of: "rast-build")
        for library in LinkageTests.buildingOnly {
            #expect(!linked(libraries, prefix: library).isEmpty, "rast-build should link \(library); ldd lists \(libraries)")
        }
    }
}
