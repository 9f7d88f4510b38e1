import Foundation
import Kernel
import SystemSupport
import TestSupport
import Testing

/// Kernel source and configuration errors carry the error behind them, not only its text.
struct KernelErrorCauseTests {
    @Test func anUnreadableFragmentCarriesTheSystemsError() throws {
        var fragments = ConfigFragmentSet()
        let path = "/nonexistent/rast-fragment.config"
        let error = try #require(throws: KernelConfigError.self) { try fragments.add(fragmentAt: path) }
        let system = try #require(error.underlying(SystemError.self))
        #expect(system.errno == ENOENT)
        #expect(error.description == "cannot read kernel configuration fragment \(path): \(system)")
    }

    @Test func aTarballThatDoesNotUnpackCarriesTarsFailure() throws {
        let scratch = try Scratch("rast-ksrc")
        let garbage = scratch.appending("linux.tar.gz")
        try Files.write(garbage, string: "not a tarball\n")
        let preparer = SourcePreparer(cacheDirectory: scratch.appending("cache"), fetcher: nil, progress: SilentProgress())
        let error = try #require(throws: KernelSourceError.self) { try preparer.prepare(.local(path: garbage)) }
        let tar = try #require(error.underlying(CommandError.self))
        #expect(error.description == "cannot fetch kernel source \(garbage): unpacking failed: \(tar)")
    }
}
