import Containers
import Foundation
import OCI
import SystemSupport
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Records on disk and their reconciliation with crun (`crun state` against a state
/// directory of the test's own) and with the boot they were written in. Containers are made
/// from a real image in a real store; crun itself cannot start them on these hosts.
@Suite("Container records", .serialized)
struct ContainerStoreTests {
    final class Fixture {
        let scratch: Scratch
        let images: ImageStore
        let containers: ContainerStore
        let engine: ContainerEngine
        let image: StoredImage

        init() throws {
            try Require.root()
            try Require.programs("crun", "umoci", "tar")
            scratch = try Scratch("rast-containers")
            let builder = try OCILayoutBuilder(layout: scratch.appending("layout"), scratch: scratch.appending("layers"))
            try builder.image("bb", layers: [[.file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), .file("bin/app", "#!/bin/sh\n", mode: 0o755)]],
                              cmd: ["/bin/app"])
            images = try ImageStore(root: scratch.appending("data/oci"))
            image = try images.pull(try ImageSource(parsing: "oci:\(builder.layout):bb"), name: "bb")
            containers = try ContainerStore(root: scratch.appending("data/containers"), crun: Crun(root: scratch.appending("crun")))
            try Files.createDirectory(scratch.appending("crun"))
            engine = ContainerEngine(containers: containers, images: images)
        }
    }

    @Test func createWritesABundleAndARecord() throws {
        let fixture = try Fixture()
        var options = RunOptions()
        options.name = "web"
        options.memory = 8 << 20
        let record = try fixture.engine.create(from: .image(fixture.image), options: options)
        #expect(record.status == .created)
        #expect(record.name == "web")
        #expect(record.command == ["/bin/app"])
        #expect(record.imageID == fixture.image.id.description)
        let bundle = fixture.containers.directory(record.id)
        #expect(try Files.readString(bundle + "/rootfs/etc/passwd").hasPrefix("root:"))
        let config = try Files.readString(bundle + "/config.json")
        #expect(config.contains("\"limit\" : 8388608"))
        var info = stat()
        #expect(stat(bundle + "/config.json", &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(try fixture.containers.find("web").id == record.id)
        #expect(try fixture.containers.find(String(record.id.prefix(6))).name == "web")

        // Names are unique; a second container gets its short ID as its name.
        #expect(throws: ContainerError.nameInUse("web", id: record.id)) {
            try fixture.engine.create(from: .image(fixture.image), options: options)
        }
        let other = try fixture.engine.create(from: .image(fixture.image), options: RunOptions())
        #expect(other.name == other.shortID)

        // rm deletes the root filesystem, the bundle and the record.
        #expect(try fixture.engine.remove(["web", other.name], force: false) == ["web", other.name])
        #expect(try FileManagerShim.contents(of: fixture.scratch.appending("data/containers")).filter { $0 != "lock" }.isEmpty)
        #expect(throws: ContainerError.notFound("web")) { try fixture.containers.find("web") }
    }

    @Test func recordsAreReconciledWithCrunAndTheBoot() throws {
        let fixture = try Fixture()
        let record = try fixture.engine.create(from: .image(fixture.image), options: RunOptions())
        // It says running, but its monitor is gone and crun does not know it.
        try fixture.containers.update(record.id) {
            $0.status = .running
            $0.monitorPID = 999_999
        }
        let lost = try fixture.containers.find(record.id)
        #expect(lost.status == .exited)
        #expect(lost.note == "crun no longer knows it (rast was stopped while it ran)")

        // Written in another boot: the restart ended it, whatever crun says.
        try fixture.containers.update(record.id) {
            $0.status = .running
            $0.note = nil
            $0.bootID = "00000000-0000-0000-0000-000000000000"
        }
        let restarted = try fixture.containers.records().first { $0.id == record.id }
        #expect(restarted?.status == .exited)
        #expect(restarted?.note == "the system restarted while it ran")

        // A live monitor (this test process) keeps a running record as it is.
        let me = getpid()
        try fixture.containers.update(record.id) {
            $0.status = .running
            $0.bootID = ContainerStore.bootID()
            $0.monitorPID = me
            $0.monitorStart = ContainerStore.startTime(me)
        }
        #expect(try fixture.containers.find(record.id).status == .running)
        #expect(throws: ContainerError.running(record.name, action: "remove")) { try fixture.engine.remove([record.id], force: false) }
        // A reused PID (another start time) is no monitor.
        try fixture.containers.update(record.id) { $0.monitorStart = 1 }
        #expect(try fixture.containers.find(record.id).status == .exited)
    }

    @Test func aContainerFromADirectoryTreeAndUserNamespaceOwnership() throws {
        let fixture = try Fixture()
        let snapshot = fixture.scratch.appending("snapshot-root")
        try Files.write(snapshot + "/etc/hostname", string: "snap\n")
        var options = RunOptions()
        options.command = ["cat", "/etc/hostname"]
        options.userNamespace = true
        let record = try fixture.engine.create(from: .snapshot(3, path: snapshot), options: options)
        #expect(record.image == "snapshot 3")
        #expect(record.snapshot == 3)
        let rootfs = fixture.containers.rootfs(record.id)
        var info = stat()
        #expect(stat(rootfs + "/etc/hostname", &info) == 0)
        #expect(info.st_uid == Bundle.subordinateRange().hostID, "files are owned by the mapped root")
        #expect(try Files.readString(fixture.containers.directory(record.id) + "/config.json").contains("\"type\" : \"user\""))
        #expect(try Files.readString(snapshot + "/etc/hostname") == "snap\n", "the snapshot itself is untouched")
        #expect(stat(snapshot + "/etc/hostname", &info) == 0 && info.st_uid == 0)
    }
}
