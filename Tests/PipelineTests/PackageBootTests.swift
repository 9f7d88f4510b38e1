import Foundation
import Packages
import Pipeline
import Recipe
import SystemSupport
import TestSupport
import Testing
import VirtualMachine
#if canImport(Glibc)
import Glibc
#endif

extension ImageBuilds {
    /// rast's package commands inside a booted image, without networking: the packages come from a
    /// repository on a second virtual disk (a FAT image made with mtools), and the image is booted
    /// again (each boot a separate QEMU run on the same image file) to see what stuck.
    @Suite(.serialized) struct PackageBootTests {
        static let package = PKGBUILDSpec(name: "rasthello", description: "greets from a guest repository",
                                          files: ["usr/bin/rasthello": "#!/bin/sh\necho 'hello from rasthello'\n"])

        /// A FAT disk image holding a pacman repository, written without mounting (the host kernel
        /// has no vfat): mkfs.fat on a file, then mcopy.
        static func repositoryDisk(in scratch: Scratch) throws -> String {
            let repository = try LocalRepository(name: "guestrepo", directory: scratch.appending("guestrepo"))
            let built = try Makepkg().build(try package.write(in: scratch.appending("pkgbuilds")), into: scratch.appending("built"))
            try repository.add(built.packages)
            let disk = scratch.appending("repo.img")
            try Command("mkfs.fat", ["-C", "-n", "GUESTREPO", disk, "16384"]).run()
            // The database links (guestrepo.db -> guestrepo.db.tar.gz) go in as files: FAT has no links.
            let files = try FileManagerShim.contents(of: repository.directory).filter { !$0.hasPrefix(".") }.sorted()
            try Command("mcopy", ["-i", disk] + files.map { repository.directory + "/" + $0 } + ["::/"]).run()
            let listing = try Command("mdir", ["-i", disk, "-b", "::/"]).output()
            #expect(listing.contains("guestrepo.db"), "\(listing)")
            return disk
        }

        @Test func rastSInTheBootedImageSurvivesARebootAndRastRRemovesIt() throws {
            try ImageTestSupport.requirements()
            try Require.programs("mcopy", "mdir")
            let scratch = try Scratch("rast-pkgboot")
            let out = scratch.appending("out")
            let recipe = try ImageTestSupport.recipe("minimal", output: out) { recipe in
                recipe.output.formats = [.raw]
            }
            // A package cache of its own (other image tests may build the same packages at the same
            // time), sharing only the kernel cache, so that the kernel is not built again.
            var options = ImageTestSupport.options(bootTest: false)
            options.cacheDirectory = scratch.appending("cache")
            try Files.createDirectory(options.cacheDirectory)
            try Files.createDirectory(Files.cacheDirectory + "/kernel")
            try SystemError.check("symlink", path: options.cacheDirectory + "/kernel") {
                symlink(Files.cacheDirectory + "/kernel", options.cacheDirectory + "/kernel")
            }
            _ = try ImageBuilder(recipe: recipe, options: options).build()
            let image = out + "/minimal.raw"
            let repository = MachineConfiguration.Disk(path: try Self.repositoryDisk(in: scratch), format: "raw", snapshot: true)
            let tree = ["root", "└── 0 - base snapshot", "    └── 1 - base system", "        ├── 2 - workstation"]

            func boot(_ number: Int, current: Int, checks: String) throws -> BootTestResult {
                let test = BootTest(image: image, format: "raw", firmware: .bios, timeout: 400, memory: "512M",
                                    expectation: BootExpectation(current: current, tree: nil), extraChecks: checks,
                                    persistent: true, extraDisks: [repository], consoleLog: scratch.appending("boot\(number).log"))
                let result = try test.run(progress: TerminalProgress(interactive: false))
                print("boot \(number): \(result.outcome) in \(String(format: "%.1f", result.seconds)) s (\(result.accelerator))")
                for line in result.reportedTree { print("boot \(number): tree: \(line)") }
                if !result.passed { print(try Files.readString(result.consoleLog).split(separator: "\n").suffix(60).joined(separator: "\n")) }
                return result
            }

            // First boot: add the repository from /dev/vdb to pacman.conf, save /etc into the booted
            // snapshot, install from it the safe way, and make sure it is on disk before power-off.
            let first = try boot(1, current: 1, checks: """
                mount -t tmpfs tmpfs /mnt
                mkdir /mnt/repo
                mount -t vfat -o ro /dev/vdb /mnt/repo
                printf '\\n[guestrepo]\\nSigLevel = Never\\nServer = file:///mnt/repo\\n' >> /etc/pacman.conf
                rast etc-update
                rast -Ss rasthello && echo "the booted snapshot already knows rasthello" && exit 1
                rast -S rasthello > /tmp/rast-S 2>&1 || { cat /tmp/rast-S; exit 1; }
                cat /tmp/rast-S
                rast tree
                [ "$(rast current)" = 1 ] || exit 1
                test ! -e /usr/bin/rasthello
                sync
                """)
            #expect(first.passed, "\(first.outcome)")
            #expect(first.reportedCurrent == "1")
            let firstLog = try Files.readString(first.consoleLog)
            #expect(firstLog.contains("snapshot 3 (from 1) is deployed and boots next"), "the guest made and deployed snapshot 3")
            guard first.passed else { return }

            // Second boot: snapshot 3 runs, with the package; remove it the same way.
            let second = try boot(2, current: 3, checks: """
                rast -Q rasthello | grep -x 'rasthello 1.0-1'
                [ "$(rasthello)" = "hello from rasthello" ]
                rast tree | grep -q '3\\* - rast -S rasthello'
                rast -R rasthello > /tmp/rast-R 2>&1 || { cat /tmp/rast-R; exit 1; }
                cat /tmp/rast-R
                test -x /usr/bin/rasthello
                sync
                """)
            #expect(second.passed, "\(second.outcome)")
            #expect(second.reportedCurrent == "3")
            #expect(Array(second.reportedTree.prefix(4)) == tree, "\(second.reportedTree)")
            #expect(second.reportedTree.contains { $0.contains("3* - rast -S rasthello") }, "\(second.reportedTree)")
            guard second.passed else { return }

            // Third boot: snapshot 4, without it; 3 is still in the tree as the rollback.
            let third = try boot(3, current: 4, checks: """
                if rast -Q rasthello; then echo "rasthello is still installed"; exit 1; fi
                test ! -e /usr/bin/rasthello
                rast -Q | grep -q '^rast '
                rast check
                """)
            #expect(third.passed, "\(third.outcome)")
            #expect(third.reportedCurrent == "4")
            #expect(third.reportedTree.contains { $0.contains("4* - rast -R rasthello") }, "\(third.reportedTree)")
            #expect(third.reportedTree.contains { $0.contains("3 - rast -S rasthello") }, "\(third.reportedTree)")
        }
    }
}
