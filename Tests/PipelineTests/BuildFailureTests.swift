import Alpm
import Foundation
import ImageSupport
import Packages
import Pipeline
import Recipe
import SystemSupport
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

extension ImageBuilds {
    /// Builds that go wrong: each must name the cause, release every mount and loop device, and
    /// leave no file under a final output name.
    @Suite(.serialized) struct BuildFailureTests {
        static func expectNoOutputs(in directory: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
            let names = Files.isDirectory(directory) ? try FileManagerShim.contents(of: directory) : []
            let finals = names.filter { $0.hasSuffix(".raw") || $0.hasSuffix(".qcow2") || $0.hasSuffix(".manifest.json") || $0 == "SHA256SUMS" }
            #expect(finals.isEmpty, "no final-named output: \(finals)", sourceLocation: sourceLocation)
            #expect(!names.contains { $0.hasPrefix(".rast-work") }, "the work directory is gone: \(names)", sourceLocation: sourceLocation)
            try ImageTestSupport.expectNoLeftovers(under: directory, sourceLocation: sourceLocation)
        }

        /// A repository of makepkg-built packages served over HTTP on 127.0.0.1.
        static func remoteRepository(in scratch: Scratch) throws -> HTTPServer {
            let repository = try LocalRepository(name: "remote", directory: scratch.appending("www/remote"))
            for spec in [PKGBUILDFixtures.hello(version: "1.0"), PKGBUILDFixtures.libhello] {
                let directory = try spec.write(in: scratch.appending("pkgbuilds"))
                let built = try Makepkg().build(directory, into: scratch.appending("built"))
                _ = try repository.add(built.packages)
            }
            return try HTTPServer(root: scratch.appending("www"))
        }

        @Test func packagesFromARemoteRepositoryOverHTTPAreInstalled() throws {
            try ImageTestSupport.requirements()
            let scratch = try Scratch("rast-remote")
            let server = try Self.remoteRepository(in: scratch)
            defer { server.stop() }
            let out = scratch.appending("out")
            try Files.write(scratch.appending("overlay/motd"), string: "welcome to rastOS\n")
            try Files.write(scratch.appending("overlay/skel/profile.d/rast.sh"), string: "export RAST=1\n")
            let recipe = try ImageTestSupport.recipe("minimal", output: out) { recipe in
                recipe.repositories = [RepositorySpec(name: "remote", servers: [server.baseURL + "/$repo"], sigLevel: ["Never"])]
                recipe.packages.install.append("hello")
                recipe.files = [FileOverlay(source: scratch.appending("overlay/motd"), destination: "/etc/motd", mode: 0o600),
                                FileOverlay(source: scratch.appending("overlay/skel"), destination: "/etc/skel")]
                recipe.output.formats = [.raw]
            }
            // A cache of its own, so that the remote packages kept across builds are this test's;
            // the kernel and local packages come from the shared cache.
            var options = ImageTestSupport.options(bootTest: false)
            options.cacheDirectory = scratch.appending("cache")
            for shared in ["kernel", "packages"] {
                try Files.createDirectory(Files.cacheDirectory + "/" + shared)
                try Files.createDirectory(options.cacheDirectory)
                try SystemError.check("symlink", path: options.cacheDirectory + "/" + shared) {
                    symlink(Files.cacheDirectory + "/" + shared, options.cacheDirectory + "/" + shared)
                }
            }
            let result = try ImageBuilder(recipe: recipe, options: options).build()
            let versions = Dictionary(uniqueKeysWithValues: result.manifest.packages.map { ($0.name, $0.version) })
            #expect(versions["hello"] == "1.0-1")
            #expect(versions["libhello"] == "1.0-1", "dependencies come along")
            #expect(server.requests.contains { $0.path == "/remote/remote.db" })
            #expect(server.requests.contains { $0.path.hasPrefix("/remote/hello-1.0-1") })
            #expect(Files.exists(options.cacheDirectory + "/remote-packages/" + PKGBUILDFixtures.hello(version: "1.0").packageFileName),
                    "downloaded packages are kept")
            print("image: installed hello 1.0-1 and libhello 1.0-1 from \(server.baseURL)/remote into snapshot 0")
            try ImageTestSupport.withMountedRoot(out + "/minimal.raw", manifest: result.manifest) { (top: String) throws in
                let etc = top + "/@.snapshots/etc/etc-1"
                #expect(try Files.readString(etc + "/motd") == "welcome to rastOS\n")
                var st = stat()
                #expect(stat(etc + "/motd", &st) == 0 && st.st_mode & 0o777 == 0o600, "the overlay's mode")
                #expect(try Files.readString(etc + "/skel/profile.d/rast.sh") == "export RAST=1\n")
                #expect(Files.exists(top + "/@.snapshots/rootfs/snapshot-1/usr/bin/hello"))
            }
            try ImageTestSupport.expectNoLeftovers(under: out)

            // The same recipe again: the database is fetched, the packages are not.
            func packageRequests(after start: Int) -> [String] {
                server.requests.dropFirst(start).map(\.path).filter { $0.contains(".pkg.tar") }
            }
            var start = server.requests.count
            let again = try ImageBuilder(recipe: recipe, options: options).build()
            #expect(server.requests.dropFirst(start).contains { $0.path == "/remote/remote.db" })
            #expect(packageRequests(after: start).isEmpty, "kept packages are not downloaded again")
            #expect(again.manifest.packages.contains { $0.name == "hello" && $0.version == "1.0-1" })

            // The repository rebuilds hello under the same name with other contents: the kept file
            // no longer matches the database, so it is dropped and the new one downloaded.
            var rebuilt = PKGBUILDFixtures.hello(version: "1.0")
            rebuilt.files["usr/share/hello/rebuilt"] = "yes\n"
            let built = try Makepkg().build(try rebuilt.write(in: scratch.appending("pkgbuilds-2")), into: scratch.appending("built-2"))
            _ = try LocalRepository(name: "remote", directory: scratch.appending("www/remote")).add(built.packages)
            start = server.requests.count
            let third = try ImageBuilder(recipe: recipe, options: options).build()
            #expect(packageRequests(after: start).map { ($0 as NSString).lastPathComponent } == [rebuilt.packageFileName],
                    "only the rebuilt package is downloaded")
            try ImageTestSupport.withMountedRoot(out + "/minimal.raw", manifest: third.manifest) { (top: String) throws in
                #expect(try Files.readString(top + "/@.snapshots/rootfs/snapshot-1/usr/share/hello/rebuilt") == "yes\n")
            }
            try ImageTestSupport.expectNoLeftovers(under: out)
        }

        @Test func aPackageThatDoesNotExistIsNamed() throws {
            try ImageTestSupport.requirements()
            let scratch = try Scratch("rast-fail")
            let out = scratch.appending("out")
            let recipe = try ImageTestSupport.recipe("minimal", output: out) { $0.packages.install.append("no-such-package") }
            #expect {
                _ = try ImageBuilder(recipe: recipe, options: ImageTestSupport.options(bootTest: false)).build()
            } throws: { error in
                // The message names the package; its cause is libalpm's "target not found".
                let alpm = error.underlying(AlpmError.self)
                return "\(error)".contains("no-such-package") && alpm?.problems.contains(.targetNotFound("no-such-package")) == true
            }
            try Self.expectNoOutputs(in: out)
        }

        @Test func aRepositoryThatDoesNotAnswerIsNamed() throws {
            try ImageTestSupport.requirements()
            let scratch = try Scratch("rast-fail")
            let out = scratch.appending("out")
            // A port nothing listens on: bind one, note it, close it.
            let closed = try HTTPServer(root: scratch.path)
            let url = closed.baseURL
            closed.stop()
            let recipe = try ImageTestSupport.recipe("minimal", output: out) {
                $0.repositories = [RepositorySpec(name: "faraway", servers: [url + "/$repo"], sigLevel: ["Never"])]
            }
            #expect {
                _ = try ImageBuilder(recipe: recipe, options: ImageTestSupport.options(bootTest: false)).build()
            } throws: { error in
                let text = "\(error)"
                return text.contains("faraway") && text.contains(url)
            }
            try Self.expectNoOutputs(in: out)
        }

        @Test func aFailingMakepkgIsNamedAndCleanedUp() throws {
            try ImageTestSupport.requirements()
            let scratch = try Scratch("rast-fail")
            let broken = scratch.appending("pkgbuilds/broken")
            try Files.write(broken + "/PKGBUILD", string: """
                pkgname=broken
                pkgver=1
                pkgrel=1
                arch=('x86_64')
                package() { echo "this package cannot be built" >&2; return 1; }

                """)
            let out = scratch.appending("out")
            let recipe = try ImageTestSupport.recipe("minimal", output: out) { $0.packages.local.append(broken) }
            #expect {
                _ = try ImageBuilder(recipe: recipe, options: ImageTestSupport.options(bootTest: false)).build()
            } throws: { error in
                guard case .failed(_, let status, _, let tail, _)? = error.underlying(MakepkgError.self) else { return false }
                return "\(error)".contains(broken) && status != 0 && tail.contains("this package cannot be built")
            }
            try Self.expectNoOutputs(in: out)
        }

        @Test func aFullDiskFailsCleanly() throws {
            try ImageTestSupport.requirements()
            let scratch = try Scratch("rast-full")
            // 150 MiB holds the local repository (about 55 MB) but not also the image's data (the
            // raw file is sparse; its data and the QCOW2 copy are over 200 MB): the disk fills up
            // while packages go into the mounted image or, at the latest, while the outputs are
            // written. (300 MiB sufficed while the package stage still copied the rast binary and
            // its libraries into the work directory on every build.)
            let out = try scratch.smallDisk("small", size: "150m")
            defer { try? Mounts.unmount(out) }
            let recipe = try ImageTestSupport.recipe("minimal", output: out)
            #expect {
                _ = try ImageBuilder(recipe: recipe, options: ImageTestSupport.options(bootTest: false)).build()
            } throws: { error in
                print("image: the full disk was reported as: \(error)")
                return "\(error)".contains("No space left on device")
            }
            try Self.expectNoOutputs(in: out)
        }

        @Test func sigintStopsTheBuildCleanlyAndTheNextBuildSucceeds() throws {
            try ImageTestSupport.requirements()
            let rastBuild = ProjectPaths.root + "/.build/debug/rast-build"
            try Require.file(rastBuild, hint: "swift build")
            let scratch = try Scratch("rast-sigint")
            let out = scratch.appending("out")
            let recipePath = scratch.appending("minimal.toml")
            // The repository's recipe with its outputs redirected (paths in it are relative to it).
            var text = try Files.readString(ProjectPaths.recipes + "/minimal.toml")
            text = text.replacingOccurrences(of: "pkgbuilds/", with: ProjectPaths.recipes + "/pkgbuilds/")
            text += "\n"
            try Files.write(recipePath, string: text)
            let environment = ["RAST_BINARY": ImageTestSupport.rastBinary]
            let arguments = ["build", recipePath, "--no-boot-test", "--data", ProjectPaths.root]
            let outputOption = ["--output", out]

            // Interrupt once the root filesystem is mounted and packages are going in.
            var sawInstall = false
            var build = Command(rastBuild, arguments + outputOption, environment: environment)
            build.stopSignal = SIGINT
            let interrupted = try build.run(output: .linesUntil { line in
                if line.contains("packages: installing") || line.contains("configure:") { sawInstall = true }
                return sawInstall
            }, check: false, timeout: 600)
            #expect(sawInstall, "the build reached the install step")
            #expect(interrupted.stoppedByHandler)
            #expect(interrupted.status == 130, "rast-build exits with 130 after SIGINT: \(interrupted.combinedTail(lines: 10))")
            try Self.expectNoOutputs(in: out)

            let second = try Command(rastBuild, arguments + outputOption, environment: environment).run(check: false, timeout: 600)
            #expect(second.status == 0, "the next build succeeds: \(second.combinedTail(lines: 20))")
            #expect(Files.exists(out + "/minimal.raw"))
            try ImageTestSupport.expectNoLeftovers(under: out)
        }

        @Test func limineWithoutTheLimineProgramIsAClearError() throws {
            let scratch = try Scratch("rast-limine")
            let recipe = try ImageTestSupport.recipe("minimal", output: scratch.path) { $0.disk.bootloader = .limine }
            try #require(Command.find("limine") == nil, "this machine has limine; the error case cannot be shown here")
            #expect {
                try BootLoaderInstaller.preflight(recipe)
            } throws: { error in "\(error)".contains("the `limine` program is not installed") }
        }
    }
}
