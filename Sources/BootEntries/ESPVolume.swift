import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// The EFI system partition (FAT), where Limine reads its menu and every deployment's kernel.
///
/// Two ways in, one interface: a mounted vfat directory (`MountedESP`: the running system,
/// whose kernel has vfat), or mtools on a device or on an image file at an offset
/// (`MtoolsESP`: build hosts, whose kernel cannot mount FAT). Paths are relative to the
/// volume's root, `/`-separated, without a leading slash (`boot/limine/limine.conf`).
///
/// FAT has no atomic replace: `replace(_:with:)` and `install(_:as:)` write the whole new
/// content under a temporary name first (`NAME.new`, `NAME.tmp`) and rename it over the old
/// name only when it is complete. Each rename is one mtools run or one rename(2) call; killing
/// the process that asked for it leaves the old file or the new one (mtools runs are children
/// in their own process group and finish on their own). A power loss in the middle of a FAT
/// directory update can still leave the temporary name behind; readers ignore those names and
/// the next sync removes them.
package protocol ESPVolume: AnyObject {
    /// Where the volume is, for messages (`/run/rast/esp`, `disk.raw@@1048576`).
    var location: String { get }
    /// The entries of a directory (names; directories end in `/`); nil when it does not exist.
    func entries(in directory: String) throws -> [String]?
    /// Creates a directory (its parent must exist); nothing when it exists.
    func makeDirectory(_ path: String) throws
    /// The content of a file, or nil when it does not exist.
    func read(_ path: String) throws -> [UInt8]?
    /// Copies a local file in as `path`, replacing it. Not atomic: see `install(_:as:)`.
    func copy(from local: String, to path: String) throws
    /// Writes `bytes` as `path`, replacing it, and syncs it. Not atomic: see `replace(_:with:)`.
    func write(_ bytes: [UInt8], to path: String) throws
    /// Renames a file within its directory, replacing `newName`.
    func rename(_ path: String, to newName: String) throws
    /// Removes a file; nothing when it does not exist.
    func remove(_ path: String) throws
    /// Free space in bytes.
    func freeBytes() throws -> Int64
}

package enum ESPError: Error, CustomStringConvertible, Sendable, Equatable {
    /// An mtools program failed on the volume.
    case mtools(location: String, command: String, output: String)
    /// A file operation on the mounted volume failed.
    case io(location: String, operation: String, path: String, reason: String)
    /// The volume has no room for a file.
    case full(location: String, path: String, needed: Int64, free: Int64)

    package var description: String {
        switch self {
        case .mtools(let location, let command, let output):
            let detail = output.trimmingCharacters(in: .whitespacesAndNewlines)
            return "the EFI system partition (\(location)): `\(command)` failed\(detail.isEmpty ? "" : ": \(detail)")"
        case .io(let location, let operation, let path, let reason):
            return "the EFI system partition (\(location)): \(operation) \(path): \(reason)"
        case .full(let location, let path, let needed, let free):
            return "the EFI system partition (\(location)) has \(ByteCount.format(free)) free, but \(path) needs \(ByteCount.format(needed)); make disk.esp_size larger (rast-install keeps the image's ESP size)"
        }
    }
}

extension ESPVolume {
    /// Whether a file or directory exists.
    package func exists(_ path: String) throws -> Bool {
        let (directory, name) = Self.split(path)
        guard let names = try entries(in: directory) else { return false }
        return names.contains(name) || names.contains(name + "/")
    }

    /// Creates `path` and its missing parents.
    package func makeDirectories(_ path: String) throws {
        var current = ""
        for component in path.split(separator: "/") {
            current = current.isEmpty ? String(component) : current + "/" + component
            if try !exists(current) { try makeDirectory(current) }
        }
    }

    /// The file names (not directories) in a directory; [] when it does not exist.
    package func files(in directory: String) throws -> [String] {
        try (entries(in: directory) ?? []).filter { !$0.hasSuffix("/") }
    }

    /// Replaces `path` with `bytes`: the new content is written and synced as `path.new`, then
    /// renamed over `path`. A crash leaves the old file (and maybe a `.new` beside it) or the new one.
    package func replace(_ path: String, with bytes: [UInt8]) throws {
        let temporary = path + ESPNames.newSuffix
        try write(bytes, to: temporary)
        try rename(temporary, to: Self.split(path).name)
    }

    /// Copies a local file in as `path` through `path.tmp`, so that `path` only ever names a
    /// complete copy. Checks the free space first (a half-copied kernel helps nobody).
    package func install(_ local: String, as path: String) throws {
        let size = try Files.size(local)
        let free = try freeBytes()
        if size > free { throw ESPError.full(location: location, path: path, needed: size, free: free) }
        let temporary = path + ESPNames.temporarySuffix
        try copy(from: local, to: temporary)
        try rename(temporary, to: Self.split(path).name)
    }

    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return ("", path) }
        return (String(path[..<slash]), String(path[path.index(after: slash)...]))
    }
}

/// Names rast uses on the ESP.
package enum ESPNames {
    /// Suffix of a file being written to replace another (`limine.conf.new`).
    package static let newSuffix = ".new"
    /// Suffix of a file being copied in (`rastos/…-vmlinuz-linux.tmp`).
    package static let temporarySuffix = ".tmp"
}

/// The ESP mounted as vfat (the running system mounts it privately at /run/rast/esp).
package final class MountedESP: ESPVolume {
    package let directory: String

    package init(directory: String) {
        self.directory = directory
    }

    package var location: String { directory }

    func full(_ path: String) -> String { path.isEmpty ? directory : directory + "/" + path }

    func failure(_ operation: String, _ path: String, errno code: Int32 = errno) -> ESPError {
        .io(location: directory, operation: operation, path: path, reason: String(cString: strerror(code)))
    }

    package func entries(in path: String) throws -> [String]? {
        let directory = full(path)
        guard Files.isDirectory(directory) else { return nil }
        return try FileManagerShim.contents(of: directory).map { Files.isDirectory(directory + "/" + $0) ? $0 + "/" : $0 }.sorted()
    }

    package func makeDirectory(_ path: String) throws {
        if mkdir(full(path), 0o755) != 0, errno != EEXIST { throw failure("mkdir", path) }
    }

    package func read(_ path: String) throws -> [UInt8]? {
        guard Files.exists(full(path)) else { return nil }
        return try Files.read(full(path))
    }

    package func copy(from local: String, to path: String) throws {
        let input = open(local, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw SystemError("open", path: local) }
        defer { close(input) }
        try writeFile(path) { output in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
            defer { buffer.deallocate() }
            while true {
                let count = Glibc.read(input, buffer.baseAddress, buffer.count)
                if count < 0 {
                    if errno == EINTR { continue }
                    throw SystemError("read", path: local)
                }
                if count == 0 { return }
                try writeAll(output, UnsafeRawBufferPointer(rebasing: buffer[0..<count]), path: path)
            }
        }
    }

    package func write(_ bytes: [UInt8], to path: String) throws {
        try writeFile(path) { output in
            try bytes.withUnsafeBytes { try writeAll(output, $0, path: path) }
        }
    }

    /// Opens `path` truncated, lets `body` fill it, fsyncs and closes it. vfat keeps no modes:
    /// no fchmod (it would fail with EPERM).
    private func writeFile(_ path: String, _ body: (Int32) throws -> Void) throws {
        let output = open(full(path), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard output >= 0 else { throw failure("create", path) }
        defer { close(output) }
        try body(output)
        if fsync(output) != 0 { throw failure("fsync", path) }
    }

    private func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                if errno == ENOSPC {
                    throw ESPError.full(location: directory, path: path, needed: Int64(bytes.count - offset), free: (try? freeBytes()) ?? 0)
                }
                throw failure("write", path)
            }
            offset += written
        }
    }

    package func rename(_ path: String, to newName: String) throws {
        let (parent, _) = Self.split(path)
        let target = parent.isEmpty ? newName : parent + "/" + newName
        if Glibc.rename(full(path), full(target)) != 0 { throw failure("rename to \(newName)", path) }
        let fd = open(full(parent), O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("open", parent) }
        defer { close(fd) }
        if fsync(fd) != 0 { throw failure("fsync", parent) }
    }

    package func remove(_ path: String) throws {
        if unlink(full(path)) != 0, errno != ENOENT { throw failure("unlink", path) }
    }

    package func freeBytes() throws -> Int64 {
        var info = statvfs()
        guard statvfs(directory, &info) == 0 else { throw failure("statvfs", "") }
        return Int64(info.f_bavail) * Int64(info.f_frsize)
    }
}

/// The ESP through mtools, on a block device (`/dev/loop3`) or on an image file at the
/// partition's offset (`disk.raw@@1048576`): no mount, no vfat in the kernel needed.
package final class MtoolsESP: ESPVolume {
    package let image: String
    package let offset: UInt64

    package init(image: String, offset: UInt64 = 0) {
        self.image = image
        self.offset = offset
    }

    /// mtools' name for the volume.
    package var location: String { offset == 0 ? image : "\(image)@@\(offset)" }

    /// The mtools programs it runs.
    package static let tools = ["mdir", "mmd", "mcopy", "mren", "mdel"]

    /// `::/path`, mtools' name for a path on the volume.
    func drive(_ path: String) -> String { "::/" + path }

    @discardableResult
    func run(_ tool: String, _ arguments: [String], check: Bool = true) throws -> CommandResult {
        // mtools checks the disk geometry of floppies; a partition has none worth checking.
        let command = Command(tool, ["-i", location] + arguments, environment: ["MTOOLS_SKIP_CHECK": "1"])
        let result = try command.run(check: false)
        if check, result.status != 0 {
            throw ESPError.mtools(location: location, command: command.description, output: result.standardError + result.standardOutput)
        }
        return result
    }

    package func entries(in path: String) throws -> [String]? {
        let result = try run("mdir", ["-b", "-a", drive(path)], check: false)
        if result.status != 0 {
            if result.standardError.contains("not found") { return nil }
            throw ESPError.mtools(location: location, command: "mdir -b -a \(drive(path))", output: result.standardError)
        }
        // One path per line (`::/boot/limine/limine.conf`, directories with a trailing slash).
        let prefix = drive(path.isEmpty ? "" : path + "/")
        return result.standardOutput.split(separator: "\n").compactMap { line -> String? in
            let text = String(line)
            guard text.hasPrefix(prefix) else { return nil }
            let name = String(text.dropFirst(prefix.count))
            return name.isEmpty || name == "./" || name == "../" ? nil : name
        }.sorted()
    }

    package func makeDirectory(_ path: String) throws {
        if try exists(path) { return }
        try run("mmd", [drive(path)])
    }

    package func read(_ path: String) throws -> [UInt8]? {
        guard try exists(path) else { return nil }
        let local = try UnnamedFile()
        // -n: no question about overwriting the (empty) local file.
        try run("mcopy", ["-n", drive(path), local.path])
        return try Files.read(local.path)
    }

    package func copy(from local: String, to path: String) throws {
        let result = try run("mcopy", ["-o", "-D", "o", local, drive(path)], check: false)
        if result.status != 0 {
            let output = result.standardError + result.standardOutput
            if output.contains("Disk full") || output.contains("No space") {
                throw ESPError.full(location: location, path: path, needed: (try? Files.size(local)) ?? 0, free: (try? freeBytes()) ?? 0)
            }
            throw ESPError.mtools(location: location, command: "mcopy -o \(local) \(drive(path))", output: output)
        }
    }

    package func write(_ bytes: [UInt8], to path: String) throws {
        let local = try UnnamedFile()
        try local.write(bytes)
        try copy(from: local.path, to: path)
    }

    package func rename(_ path: String, to newName: String) throws {
        // -D o: an existing file of the new name is replaced (without it, mren refuses).
        try run("mren", ["-D", "o", drive(path), newName])
    }

    package func remove(_ path: String) throws {
        guard try exists(path) else { return }
        try run("mdel", [drive(path)])
    }

    package func freeBytes() throws -> Int64 {
        // The last line of a listing: "  66 046 464 bytes free" (digit grouping follows the locale).
        let output = try run("mdir", ["::/"]).standardOutput
        guard let line = output.split(separator: "\n").last(where: { $0.contains("bytes free") }) else {
            throw ESPError.mtools(location: location, command: "mdir ::/", output: "no free space in its output")
        }
        let digits = line.prefix { !$0.isLetter }.filter(\.isNumber)
        guard let free = Int64(digits) else {
            throw ESPError.mtools(location: location, command: "mdir ::/", output: "cannot read the free space from '\(line)'")
        }
        return free
    }
}

/// A temporary file without a name, for mtools (a child process) to read or write through
/// `/proc/PID/fd/N`: it goes away with this process, also when the process is killed, where a
/// named temporary file would stay behind.
final class UnnamedFile {
    let fd: Int32

    init() throws {
        let base = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        var template = Array("\(base)/rast-esp-XXXXXX".utf8CString)
        let named = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard named >= 0 else { throw SystemError("create a temporary file in", path: base) }
        unlink(String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        // Opened again with O_CLOEXEC, so that no child process inherits it.
        fd = open("/proc/self/fd/\(named)", O_RDWR | O_CLOEXEC)
        let error = errno
        close(named)
        guard fd >= 0 else { throw SystemError("open", path: "/proc/self/fd/\(named)", errno: error) }
    }

    deinit { close(fd) }

    /// The name a child process opens it by.
    var path: String { "/proc/\(getpid())/fd/\(fd)" }

    func write(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress! + offset, $0.count - offset, off_t(offset)) }
            if written < 0 {
                if errno == EINTR { continue }
                throw SystemError("write", path: path)
            }
            offset += written
        }
    }
}
