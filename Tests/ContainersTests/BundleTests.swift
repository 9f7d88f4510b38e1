@testable import Containers
import Foundation
import OCI
import SystemSupport
import Testing
import TestSupport

/// The runtime configuration rast writes for crun, checked field by field, and crun's own
/// reading of it (`crun spec`-compatible JSON that crun accepts in a dry run is not possible
/// on these hosts, so the fields a user relies on are asserted here and exercised in the
/// booted image by ContainerBootTests).
@Suite("Container bundles")
struct BundleTests {
    func rootfs(_ scratch: Scratch) throws -> String {
        let root = scratch.appending("rootfs")
        try Files.write(root + "/etc/passwd", string: "root:x:0:0::/root:/bin/sh\nweb:x:33:44::/srv:/bin/sh\n")
        try Files.write(root + "/etc/group", string: "root:x:0:\nwww:x:55:\n")
        return root
    }

    @Test func imageDefaultsAndOptions() throws {
        let scratch = try Scratch("rast-bundle")
        let root = try rootfs(scratch)
        var image = ImageConfiguration.RunConfig()
        image.env = ["PATH=/opt/bin:/usr/bin", "MODE=image"]
        image.entrypoint = ["/bin/entry"]
        image.cmd = ["--serve"]
        image.workingDir = "/srv"
        image.user = "web"
        var options = RunOptions()
        options.name = "web1"
        options.environment = ["MODE=option", "FROM_HOST"]
        options.memory = 32 << 20
        options.cpus = 0.5
        options.pidsLimit = 20
        options.readOnly = true
        options.volumes = [try RunOptions.Volume(parsing: "/srv/data:/data:ro")]
        let spec = try Bundle.spec(id: "abc", name: "web1", options: options, image: image, imageName: "app:1", rootfs: root,
                                   environment: ["FROM_HOST": "yes"])
        #expect(spec.process.args == ["/bin/entry", "--serve"])
        #expect(spec.process.env == ["PATH=/opt/bin:/usr/bin", "HOSTNAME=web1", "MODE=option", "FROM_HOST=yes"])
        #expect(spec.process.cwd == "/srv")
        #expect(spec.process.user.uid == 33 && spec.process.user.gid == 44)
        #expect(spec.process.capabilities?.effective.isEmpty == true, "a non-root user gets no effective capabilities")
        #expect(spec.hostname == "web1")
        #expect(spec.root == RuntimeSpec.Root(path: "rootfs", readonly: true))
        #expect(spec.linux.namespaces.map(\.type) == ["pid", "ipc", "uts", "mount", "cgroup", "network"])
        #expect(spec.linux.resources?.memory?.limit == 32 << 20)
        #expect(spec.linux.resources?.cpu?.quota == 50_000 && spec.linux.resources?.cpu?.period == 100_000)
        #expect(spec.linux.resources?.pids?.limit == 20)
        #expect(spec.linux.cgroupsPath == "/rast/abc")
        let data = try #require(spec.mounts.first { $0.destination == "/data" })
        #expect(data.source == "/srv/data" && data.options?.contains("ro") == true)

        // A command replaces Cmd but keeps the entrypoint; host networking has no namespace.
        options.command = ["--check"]
        options.network = .host
        options.user = "0:www"
        let other = try Bundle.spec(id: "abc", name: "web1", options: options, image: image, imageName: "app:1", rootfs: root)
        #expect(other.process.args == ["/bin/entry", "--check"])
        #expect(!other.linux.namespaces.contains { $0.type == "network" })
        #expect(other.process.user.uid == 0 && other.process.user.gid == 55)
    }

    @Test func userNamespacesMapRootToTheSubordinateRange() throws {
        let scratch = try Scratch("rast-bundle")
        let root = try rootfs(scratch)
        try Files.write(scratch.appending("subuid"), string: "admin:200000:65536\nroot:300000:65536\n")
        let range = Bundle.subordinateRange(file: scratch.appending("subuid"))
        #expect(range == RuntimeSpec.IDMapping(containerID: 0, hostID: 300_000, size: 65536))
        #expect(Bundle.subordinateRange(file: scratch.appending("missing")).hostID == 100_000)
        var options = RunOptions()
        options.command = ["sh"]
        let spec = try Bundle.spec(id: "u", name: "u", options: options, image: nil, imageName: "snapshot 1", rootfs: root, idMapping: range)
        #expect(spec.linux.namespaces.contains { $0.type == "user" })
        #expect(spec.linux.uidMappings == [range])
        #expect(spec.process.env.first == Bundle.defaultPath)
    }

    @Test func tmpfsAndHooks() throws {
        let scratch = try Scratch("rast-bundle")
        let root = try rootfs(scratch)
        var options = RunOptions()
        options.command = ["true"]
        options.tmpfs = ["/run/app"]
        options.hooks = [try RunOptions.Hook(parsing: "poststop=/usr/bin/logger,-t,ctr"), try RunOptions.Hook(parsing: "poststart=/bin/true")]
        let spec = try Bundle.spec(id: "h", name: "h", options: options, image: nil, imageName: "x", rootfs: root)
        #expect(spec.mounts.contains { $0.destination == "/run/app" && $0.type == "tmpfs" })
        #expect(spec.hooks?.poststop == [RuntimeSpec.Hook(path: "/usr/bin/logger", args: ["/usr/bin/logger", "-t", "ctr"], timeout: 60)])
        #expect(spec.hooks?.poststart?.first?.path == "/bin/true")
        #expect(spec.hooks?.createRuntime == nil)
        let stage = try #require(throws: ContainerError.self) { try RunOptions.Hook(parsing: "prestart=/bin/true") }
        #expect(stage.description.contains("the stage 'prestart' is none of createRuntime, poststart, poststop"))
        let relative = try #require(throws: ContainerError.self) { try RunOptions.Hook(parsing: "poststop=true") }
        #expect(relative.description.contains("absolute path"))
        options.tmpfs = ["tmp"]
        #expect(throws: ContainerError.self) { try Bundle.spec(id: "h", name: "h", options: options, image: nil, imageName: "x", rootfs: root) }
    }

    @Test func badInputIsNamed() throws {
        let scratch = try Scratch("rast-bundle")
        let root = try rootfs(scratch)
        #expect(throws: ContainerError.noCommand(image: "empty:1")) {
            try Bundle.spec(id: "x", name: "x", options: RunOptions(), image: nil, imageName: "empty:1", rootfs: root)
        }
        let user = try #require(throws: ContainerError.self) { try Bundle.resolveUser("nobody", rootfs: root) }
        #expect(user.description == "user 'nobody': no user 'nobody' in the container's /etc/passwd")
        let volume = try #require(throws: ContainerError.self) { try RunOptions.Volume(parsing: "data:/data") }
        #expect(volume.description == "-v data:/data: both paths must be absolute")
        let mode = try #require(throws: ContainerError.self) { try RunOptions.Volume(parsing: "/a:/b:rx") }
        #expect(mode.description.contains("the mode 'rx' is neither ro nor rw"))
        #expect(RunOptions.isValidName("web-1.a_b"))
        #expect(!RunOptions.isValidName("-web"))
        #expect(!RunOptions.isValidName("a/b"))
    }
}
