// Blkid: what is on a device or image file (filesystem type, UUID, label, partition
// table and entries), through libblkid's low-level probe, the same probing `blkid -p` does.
// A probe can start at an offset, so a partition inside an image file can be examined
// without a loop device.
import CBlkid
import SystemPackage
#if canImport(Glibc)
import Glibc
#endif

/// A failed probe: the libblkid function, the device or file, the offset and the reason.
package enum BlkidError: Error, CustomStringConvertible, Sendable, Equatable {
    /// A libblkid call failed; `errno` as libblkid left it (0 when it set none).
    case failed(function: String, path: String, offset: UInt64, errno: Int32)
    /// More than one filesystem signature was found; nothing is reported, to be safe.
    case ambivalent(path: String, offset: UInt64)
    /// The image holds no partition table, or none with this partition number.
    case noSuchPartition(number: Int, path: String)
    /// Opening the device or file failed.
    case open(path: String, errno: Int32)

    package var description: String {
        switch self {
        case .failed(let function, let path, let offset, let errno):
            let reason = errno == 0 ? "libblkid reported an error" : String(cString: strerror(errno))
            return "\(function) failed on \(Self.place(path, offset)): \(reason)"
        case .ambivalent(let path, let offset):
            return "\(Self.place(path, offset)) carries more than one filesystem signature (ambivalent result; `wipefs` lists them)"
        case .noSuchPartition(let number, let path):
            return "\(path) has no partition \(number)"
        case .open(let path, let errno):
            return "open \(path): \(String(cString: strerror(errno)))"
        }
    }

    private static func place(_ path: String, _ offset: UInt64) -> String {
        offset == 0 ? path : "\(path) at offset \(offset)"
    }
}

/// What the superblock of a filesystem (or other signature, such as swap) says.
package struct FilesystemInfo: Sendable, Equatable {
    /// TYPE: btrfs, vfat, ext4, swap, ...
    package let type: String
    /// UUID (for FAT the volume serial, such as "ABCD-1234").
    package let uuid: String?
    package let label: String?
    /// PARTUUID: the UUID of the partition entry holding the filesystem, when known.
    package var partUUID: String? { values["PART_ENTRY_UUID"] }
    /// Every value libblkid reported (USAGE, VERSION, SEC_TYPE, UUID_SUB, PART_ENTRY_*, ...).
    package let values: [String: String]

    init?(values: [String: String]) {
        guard let type = values["TYPE"] else { return nil }
        self.type = type
        uuid = values["UUID"]
        label = values["LABEL"]
        self.values = values
    }

    package subscript(key: String) -> String? { values[key] }
}

/// A partition table as libblkid reads it.
package struct PartitionTableInfo: Sendable, Equatable {
    /// PTTYPE: "gpt" or "dos" (or another scheme libblkid knows).
    package let type: String
    /// PTUUID: the disk GUID (GPT) or 8-digit identifier (MBR).
    package let id: String?
    package let partitions: [PartitionEntry]

    package func partition(_ number: Int) -> PartitionEntry? {
        partitions.first { $0.number == number }
    }
}

/// One entry of a partition table as libblkid reads it.
package struct PartitionEntry: Sendable, Equatable {
    package let number: Int
    /// In 512-byte sectors, as libblkid counts.
    package let startSector: UInt64
    package let sizeSectors: UInt64
    /// PARTUUID (for MBR tables "<disk id>-<number>").
    package let uuid: String?
    /// PARTLABEL (GPT only).
    package let name: String?
    /// The type GUID (GPT) or "0x83"-style code (MBR).
    package let type: String
    package let flags: UInt64

    package var startBytes: UInt64 { startSector * 512 }
    package var sizeBytes: UInt64 { sizeSectors * 512 }

    /// The PART_ENTRY_* values blkid reports for a partition device.
    var values: [String: String] {
        var result = ["PART_ENTRY_NUMBER": String(number), "PART_ENTRY_OFFSET": String(startSector),
                      "PART_ENTRY_SIZE": String(sizeSectors), "PART_ENTRY_TYPE": type]
        if let uuid { result["PART_ENTRY_UUID"] = uuid }
        if let name { result["PART_ENTRY_NAME"] = name }
        if flags != 0 { result["PART_ENTRY_FLAGS"] = "0x" + String(flags, radix: 16) }
        return result
    }
}

/// A libblkid probe on a device or file, optionally limited to `size` bytes from `offset`.
package final class Probe {
    package let path: String
    package let offset: UInt64
    private let probe: OpaquePointer
    /// Owned: the probe only borrows it. Closed in `deinit`.
    private let file: FileDescriptor

    package init(path: String, offset: UInt64 = 0, size: UInt64? = nil) throws {
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(path), .readOnly, options: .closeOnExec)
        } catch {
            throw BlkidError.open(path: path, errno: (error as? Errno)?.rawValue ?? EIO)
        }
        guard let probe = blkid_new_probe() else {
            try? file.close()
            throw BlkidError.failed(function: "blkid_new_probe", path: path, offset: offset, errno: ENOMEM)
        }
        errno = 0
        guard blkid_probe_set_device(probe, file.rawValue, Int64(offset), Int64(size ?? 0)) == 0 else {
            let savedErrno = errno
            blkid_free_probe(probe)
            try? file.close()
            throw BlkidError.failed(function: "blkid_probe_set_device", path: path, offset: offset, errno: savedErrno)
        }
        self.path = path
        self.offset = offset
        self.probe = probe
        self.file = file
    }

    deinit {
        blkid_free_probe(probe)
        try? file.close()
    }

    /// The filesystem (or other signature) found, or nil when there is none.
    package func filesystem() throws -> FilesystemInfo? {
        blkid_reset_probe(probe)
        blkid_probe_enable_superblocks(probe, 1)
        blkid_probe_set_superblocks_flags(probe, RAST_BLKID_SUPERBLOCK_FLAGS)
        blkid_probe_enable_partitions(probe, 1)
        blkid_probe_set_partitions_flags(probe, RAST_BLKID_PARTITION_FLAGS)
        blkid_probe_enable_topology(probe, 0)
        guard try safeProbe() else { return nil }
        return FilesystemInfo(values: values())
    }

    /// The partition table found, or nil when there is none.
    package func partitionTable() throws -> PartitionTableInfo? {
        blkid_reset_probe(probe)
        blkid_probe_enable_superblocks(probe, 0)
        blkid_probe_enable_partitions(probe, 1)
        blkid_probe_set_partitions_flags(probe, 0)
        blkid_probe_enable_topology(probe, 0)
        guard try safeProbe() else { return nil }
        errno = 0
        guard let list = blkid_probe_get_partitions(probe) else {
            if errno != 0 { throw failure("blkid_probe_get_partitions") }
            return nil
        }
        let table = blkid_partlist_get_table(list)
        let type = table.flatMap { blkid_parttable_get_type($0) }.map { String(cString: $0) } ?? values()["PTTYPE"] ?? ""
        let id = table.flatMap { blkid_parttable_get_id($0) }.map { String(cString: $0) }
        var partitions: [PartitionEntry] = []
        let count = blkid_partlist_numof_partitions(list)
        if count > 0 {
            for index in 0..<count {
                guard let partition = blkid_partlist_get_partition(list, index) else { continue }
                let typeString = blkid_partition_get_type_string(partition).map { String(cString: $0) }
                    ?? "0x" + String(blkid_partition_get_type(partition), radix: 16)
                partitions.append(PartitionEntry(
                    number: Int(blkid_partition_get_partno(partition)),
                    startSector: UInt64(blkid_partition_get_start(partition)),
                    sizeSectors: UInt64(blkid_partition_get_size(partition)),
                    uuid: blkid_partition_get_uuid(partition).map { String(cString: $0) },
                    name: blkid_partition_get_name(partition).map { String(cString: $0) },
                    type: typeString,
                    flags: UInt64(blkid_partition_get_flags(partition))))
            }
        }
        return PartitionTableInfo(type: type, id: id, partitions: partitions)
    }

    /// Runs blkid_do_safeprobe: true when something was found.
    private func safeProbe() throws -> Bool {
        errno = 0
        switch blkid_do_safeprobe(probe) {
        case 0: return true
        case 1: return false
        case -2: throw BlkidError.ambivalent(path: path, offset: offset)
        default: throw failure("blkid_do_safeprobe")
        }
    }

    private func values() -> [String: String] {
        var result: [String: String] = [:]
        let count = blkid_probe_numof_values(probe)
        guard count > 0 else { return result }
        for index in 0..<count {
            var name: UnsafePointer<CChar>?
            var data: UnsafePointer<CChar>?
            var length = 0
            guard blkid_probe_get_value(probe, index, &name, &data, &length) == 0, let name, let data else { continue }
            result[String(cString: name)] = String(cString: data)
        }
        return result
    }

    private func failure(_ function: String) -> BlkidError {
        .failed(function: function, path: path, offset: offset, errno: errno)
    }
}

/// One-call probing.
package enum Blkid {
    /// The filesystem on `path` (at `offset`, limited to `size` bytes), or nil when none.
    package static func filesystem(at path: String, offset: UInt64 = 0, size: UInt64? = nil) throws -> FilesystemInfo? {
        try Probe(path: path, offset: offset, size: size).filesystem()
    }

    /// The partition table on `path`, or nil when none.
    package static func partitionTable(at path: String) throws -> PartitionTableInfo? {
        try Probe(path: path).partitionTable()
    }

    /// The filesystem in partition `number` of the whole-disk image or device `path`,
    /// probed at the partition's offset (no loop device). PART_ENTRY_* values (and so
    /// `partUUID`) come from the partition table. Nil when the partition holds nothing.
    package static func filesystem(inPartition number: Int, of path: String) throws -> FilesystemInfo? {
        guard let table = try partitionTable(at: path), let entry = table.partition(number) else {
            throw BlkidError.noSuchPartition(number: number, path: path)
        }
        guard let found = try filesystem(at: path, offset: entry.startBytes, size: entry.sizeBytes) else { return nil }
        var values = found.values
        values["PART_ENTRY_SCHEME"] = table.type
        for (key, value) in entry.values { values[key] = value }
        return FilesystemInfo(values: values)
    }
}
