import Foundation
import SystemSupport
import Testing
import TestSupport

/// `rast run N CMD` and `rast tree-run N CMD` refuse a missing command while the arguments
/// are parsed, before any snapshot is looked at.
@Suite struct ShellCommandTests {
    @Test(arguments: ["run", "tree-run"])
    func aMissingCommandIsRefusedWithASentence(subcommand: String) throws {
        let binary = RecipeCommandTests.root + "/.build/debug/rast"
        try Require.file(binary, hint: "build it first with `swift build --build-tests`")
        let result = try Command(binary, [subcommand, "--root", "/nonexistent", "1"]).run(check: false)
        #expect(result.status == 64)
        #expect(result.standardError.contains("Give the command to run after the snapshot number."), "\(result.standardError)")
        #expect(result.standardError.contains("Usage: rast \(subcommand) "), "\(result.standardError)")
    }
}
