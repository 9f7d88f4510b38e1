import Foundation
import Kernel
import SystemSupport
import TestSupport
import Testing

@Suite struct FragmentParsingTests {
    @Test func parsesAssignmentsAndNotSetComments() throws {
        let options = try ConfigFragmentSet.parse("""
            # a comment
            CONFIG_A=y

            CONFIG_B="text with spaces"
            # CONFIG_C is not set
            CONFIG_D=0x10
            CONFIG_E=-3
            """, file: "f.config")
        #expect(options.map(\.symbol) == ["A", "B", "C", "D", "E"])
        #expect(options.map(\.value) == ["y", "\"text with spaces\"", "n", "0x10", "-3"])
        #expect(options[2].line == 5)
    }

    @Test func syntaxErrorNamesFileAndLine() {
        #expect {
            _ = try ConfigFragmentSet.parse("CONFIG_A=y\nCONFIG_B y\n", file: "broken.config")
        } throws: { error in
            "\(error)".hasPrefix("broken.config:2: expected CONFIG_NAME=value")
        }
        #expect {
            _ = try ConfigFragmentSet.parse("CONFIG_A=yes please\n", file: "value.config")
        } throws: { error in
            "\(error)".contains("value.config:1: a value must be y, m, n")
        }
    }

    @Test func laterFragmentsOverrideEarlierOnesAndTheOverrideIsRecorded() throws {
        var set = ConfigFragmentSet()
        for option in try ConfigFragmentSet.parse("CONFIG_A=y\nCONFIG_B=y\n", file: "base.config") { set.add(option) }
        for option in try ConfigFragmentSet.parse("# CONFIG_A is not set\nCONFIG_C=m\n", file: "extra.config") { set.add(option) }
        #expect(set["A"]?.value == "n")
        #expect(set.mergedText == "# CONFIG_A is not set\nCONFIG_B=y\nCONFIG_C=m\n")
        #expect(set.overrides.count == 1)
        #expect(set.overrides[0].description == "CONFIG_A redefined by extra.config:1: y -> n")
    }

    @Test func reportListsDroppedAndChangedOptions() throws {
        var set = ConfigFragmentSet()
        for option in try ConfigFragmentSet.parse("CONFIG_A=y\nCONFIG_B=m\nCONFIG_C=y\n", file: "p.config") { set.add(option) }
        let report = try ConfigReport(requested: set, finalConfig: "CONFIG_A=y\nCONFIG_B=y\n# CONFIG_C is not set\n")
        #expect(report.changes.map(\.option.symbol) == ["B", "C"])
        #expect(report.changes[0].description.contains("CONFIG_B was changed: requested m, final .config has y"))
        #expect(report.changes[1].description.contains("CONFIG_C was dropped"))
    }
}

/// Every profile, merged on the real 6.1 source with allnoconfig + olddefconfig.
@Suite struct ProfileMergeTests {
    static let impossible = ConfigOption(symbol: "HIGHMEM4G", value: "y", file: "test", line: 1)

    static func stage(_ scratch: Scratch) -> KernelStage {
        KernelStage(cacheDirectory: Files.cacheDirectory + "/kernel", logDirectory: scratch.appending("logs"),
                    fetcher: nil, progress: SilentProgress())
    }

    /// A build of the local 6.1 source with the base profile and a fragment `name`.config
    /// holding `text` (written in `scratch`), packaged as linux-rast-`name`.
    static func baseRequest(_ scratch: Scratch, fragment name: String, _ text: String) throws -> (KernelBuildRequest, fragment: String) {
        let fragment = scratch.appending("\(name).config")
        try Files.write(fragment, string: text)
        let request = KernelBuildRequest(source: .local(path: ProjectPaths.debianKernelSource),
                                         profiles: [ProjectPaths.kernelProfiles + "/base.config"],
                                         fragments: [fragment], packageName: "linux-rast-\(name)")
        return (request, fragment)
    }

    @Test(arguments: ["base", "container", "development", "production"])
    func profileSurvivesOlddefconfigAndAnImpossibleOptionIsReported(profile: String) throws {
        try Require.file(ProjectPaths.debianKernelSource, hint: "apt-get install linux-source-6.1")
        try Require.programs("make", "gcc", "flex", "bison", "bc")
        let scratch = try Scratch("rast-kconfig")
        let profiles = [ProjectPaths.kernelProfiles + "/base.config"]
            + (profile == "base" ? [] : [ProjectPaths.kernelProfiles + "/\(profile).config"])
        let profileText = try Files.readString(profiles[profiles.count - 1])
        #expect(profileText.hasPrefix("# \(profile):"), "each profile starts with a comment saying what it is for")

        let request = KernelBuildRequest(source: .local(path: ProjectPaths.debianKernelSource), profiles: profiles,
                                         options: [Self.impossible], packageName: "linux-rast-\(profile)")
        let stage = Self.stage(scratch)
        let merged = try stage.mergedFragments(request)
        let source = try stage.preparedSource(request)
        let report = try stage.configure(request, source: source, merged: merged,
                                         buildDirectory: scratch.appending("build"), log: nil)
        // Everything the profile asked for is in the final .config; only the impossible option is not.
        #expect(report.changes.map(\.option.symbol) == ["HIGHMEM4G"], "\(report.changes)")
        #expect(report.changes.first?.description.contains("CONFIG_HIGHMEM4G was dropped") == true)
        let final = try Files.readString(scratch.appending("build/.config"))
        for option in merged.options where option.symbol != "HIGHMEM4G" {
            if option.value == "n" {
                #expect(!final.contains("CONFIG_\(option.symbol)=y"))
            } else {
                #expect(final.contains("CONFIG_\(option.symbol)=\(option.value)\n"))
            }
        }
        print("kernel profile \(profile): \(report.requested) requested options survived olddefconfig; CONFIG_HIGHMEM4G reported as dropped")
    }

    @Test func unknownSymbolIsAnErrorNamingFileAndLine() throws {
        try Require.file(ProjectPaths.debianKernelSource, hint: "apt-get install linux-source-6.1")
        let scratch = try Scratch("rast-kconfig")
        let (request, fragment) = try Self.baseRequest(scratch, fragment: "typo", "CONFIG_BTRFS_FS=y\nCONFIG_BTRFZ_FS=y\n")
        let stage = Self.stage(scratch)
        #expect {
            _ = try stage.configure(request, source: try stage.preparedSource(request), merged: try stage.mergedFragments(request),
                                    buildDirectory: scratch.appending("build"), log: nil)
        } throws: { error in
            "\(error)".contains("\(fragment):2: CONFIG_BTRFZ_FS is not a symbol of this kernel's Kconfig")
        }
    }

    @Test func fragmentWithSyntaxErrorFailsTheBuildBeforeAnyWork() throws {
        let scratch = try Scratch("rast-kconfig")
        let (request, fragment) = try Self.baseRequest(scratch, fragment: "broken", "CONFIG_OK=y\nthis is not kconfig\n")
        #expect {
            _ = try Self.stage(scratch).build(request)
        } throws: { error in
            "\(error)".contains("\(fragment):2: expected CONFIG_NAME=value")
        }
    }

    @Test func missingSourceIsNamed() throws {
        let scratch = try Scratch("rast-kconfig")
        let request = KernelBuildRequest(source: .local(path: "/nonexistent/linux-9.9.tar.xz"),
                                         profiles: [ProjectPaths.kernelProfiles + "/base.config"], packageName: "linux-rast-base")
        #expect {
            _ = try Self.stage(scratch).build(request)
        } throws: { error in
            "\(error)".contains("kernel source /nonexistent/linux-9.9.tar.xz does not exist")
        }
    }
}
