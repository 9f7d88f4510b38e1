// Fdisk: GPT and MBR partition tables on disk images through libfdisk.
//
// A GPT disk of N sectors (512 bytes each on image files) as this module writes it:
//
//   LBA 0        protective MBR (one partition of type 0xEE covering the disk)
//   LBA 1        primary GPT header (disk GUID, entry array location, CRCs)
//   LBA 2..33    partition entry array (128 entries of 128 bytes: type GUID,
//                partition GUID = PARTUUID, first/last LBA, attributes, UTF-16 name)
//   LBA 2048..   partitions, each starting on the alignment grain (1 MiB by default)
//   LBA N-33..   backup entry array
//   LBA N-1      backup GPT header
//
// An MBR ("dos") disk keeps four 16-byte entries (type code, start, size, active flag) and
// a 32-bit disk identifier in LBA 0; its PARTUUIDs are "<disk id>-<partition number>".
//
// `PartitionTable` edits the table in memory; nothing reaches the file until `write()`.
// Reading a table back (`partitions()`, `diskID`) is the same code the tests use for round
// trips against sgdisk and sfdisk.
import CFdisk
import SystemPackage
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The kind of partition table.
package enum PartitionTableKind: String, Sendable, CaseIterable {
    case gpt
    /// MBR, which libfdisk calls "dos".
    case dos
}

/// How large a new partition is.
package enum PartitionSize: Sendable, Equatable {
    /// This many bytes, rounded up to whole sectors (the end stays aligned).
    case bytes(UInt64)
    /// Everything from the start to the end of the usable space.
    case restOfDisk
}

/// A partition to add to a table.
package struct NewPartition: Sendable, Equatable {
    package var type: PartitionType
    package var size: PartitionSize
    /// The GPT partition name (PARTLABEL); not possible in MBR tables.
    package var name: String?
    /// A fixed GPT partition GUID (PARTUUID); random when nil.
    package var uuid: UUID?
    /// The first byte (a multiple of the sector size); nil: the first aligned free sector.
    package var startBytes: UInt64?
    /// The MBR active flag, or the GPT "legacy BIOS bootable" attribute.
    package var bootable: Bool

    package init(type: PartitionType, size: PartitionSize, name: String? = nil, uuid: UUID? = nil,
                startBytes: UInt64? = nil, bootable: Bool = false) {
        self.type = type
        self.size = size
        self.name = name
        self.uuid = uuid
        self.startBytes = startBytes
        self.bootable = bootable
    }
}

/// A partition as the table records it.
package struct Partition: Sendable, Equatable {
    /// The partition number, from 1 (as in /dev/sda1).
    package let number: Int
    package let startSector: UInt64
    package let sizeSectors: UInt64
    package let sectorSize: UInt64
    package let type: PartitionType
    /// libfdisk's human-readable name of the type ("EFI System"), if it knows the type.
    package let typeName: String?
    /// The GPT partition name (PARTLABEL); nil in MBR tables.
    package let name: String?
    /// The PARTUUID as blkid and the kernel's root=PARTUUID= write it (lower case).
    package let uuid: String?
    package let bootable: Bool

    package var endSector: UInt64 { startSector + sizeSectors - 1 }
    package var startBytes: UInt64 { startSector * sectorSize }
    package var sizeBytes: UInt64 { sizeSectors * sectorSize }
}

/// A partition table on a disk image or block device, owned through a libfdisk context.
package final class PartitionTable {
    /// The image or device path.
    package let path: String
    private let context: OpaquePointer
    /// Owned: libfdisk only borrows it. Closed in `deinit`.
    private let file: FileDescriptor
    private let messages = MessageLog()
    private let readOnly: Bool

    /// The default alignment of partition starts and ends.
    package static let defaultAlignment: UInt64 = 1 << 20

    /// Opens the table on `path` (read-only unless `readOnly` is false, to add partitions).
    package convenience init(path: String, readOnly: Bool = true, alignment: UInt64 = PartitionTable.defaultAlignment) throws {
        try self.init(opening: path, readOnly: readOnly, alignment: alignment)
    }

    /// Starts a new, empty table of `kind` on `path`, replacing whatever table was there
    /// once `write()` runs (old filesystem and table signatures are wiped then too).
    /// `diskID` fixes the disk GUID (GPT) or the 32-bit identifier (MBR, 8 hex digits).
    package static func create(_ kind: PartitionTableKind, on path: String, diskID: String? = nil,
                              alignment: UInt64 = PartitionTable.defaultAlignment) throws -> PartitionTable {
        let table = try PartitionTable(opening: path, readOnly: false, alignment: alignment)
        fdisk_enable_wipe(table.context, 1)
        try table.call("fdisk_create_disklabel") { fdisk_create_disklabel(table.context, kind.rawValue) }
        if let diskID { try table.setDiskID(diskID) }
        return table
    }

    private init(opening path: String, readOnly: Bool, alignment: UInt64) throws {
        guard alignment >= 512, alignment & (alignment - 1) == 0 else {
            throw FdiskError.invalidValue(String(alignment), reason: "the alignment must be a power of two of at least 512 bytes")
        }
        guard let context = fdisk_new_context() else {
            throw FdiskError.system(function: "fdisk_new_context", path: path, errno: ENOMEM)
        }
        let file: FileDescriptor
        do {
            file = try FileDescriptor.open(FilePath(path), readOnly ? .readOnly : .readWrite, options: .closeOnExec)
        } catch {
            fdisk_unref_context(context)
            throw FdiskError.system(function: "open", path: path, errno: (error as? Errno)?.rawValue ?? EIO)
        }
        self.path = path
        self.context = context
        self.file = file
        self.readOnly = readOnly
        fdisk_set_ask(context, fdiskAskCallback, Unmanaged.passUnretained(messages).toOpaque())
        fdisk_disable_dialogs(context, 1)
        fdisk_save_user_grain(context, UInt(alignment))
        // The descriptor stays ours: libfdisk neither closes it nor calls sync() for it.
        try call("fdisk_assign_device_by_fd") { fdisk_assign_device_by_fd(context, file.rawValue, path, readOnly ? 1 : 0) }
    }

    deinit {
        fdisk_unref_context(context)
        try? file.close()
    }

    /// The kind of table on the disk, or nil when there is none.
    package var kind: PartitionTableKind? {
        guard fdisk_has_label(context) != 0, let label = fdisk_get_label(context, nil),
              let name = fdisk_label_get_name(label) else { return nil }
        return PartitionTableKind(rawValue: String(cString: name))
    }

    /// The logical sector size in bytes (512 for image files).
    package var sectorSize: UInt64 { UInt64(fdisk_get_sector_size(context)) }

    /// The size of the whole disk in sectors.
    package var sectorCount: UInt64 { fdisk_get_nsectors(context) }

    /// The first and last sector partitions may use.
    package var usableSectors: ClosedRange<UInt64> {
        let first = fdisk_get_first_lba(context)
        return first...max(first, fdisk_get_last_lba(context))
    }

    /// The disk identifier as blkid shows it (PTUUID): a lower-case GUID for GPT, eight
    /// hex digits for MBR.
    package func diskID() throws -> String {
        var raw: UnsafeMutablePointer<CChar>?
        try call("fdisk_get_disklabel_id") { fdisk_get_disklabel_id(context, &raw) }
        defer { free(raw) }
        let text = raw.map { String(cString: $0) } ?? ""
        return (text.lowercased().hasPrefix("0x") ? String(text.dropFirst(2)) : text).lowercased()
    }

    /// Sets the disk GUID (GPT) or the 32-bit disk identifier (MBR, 8 hex digits).
    package func setDiskID(_ id: String) throws {
        let value: String
        switch try requireKind() {
        case .gpt:
            guard let uuid = UUID(uuidString: id) else {
                throw FdiskError.invalidValue(id, reason: "a GPT disk identifier is a GUID")
            }
            value = uuid.uuidString
        case .dos:
            let digits = id.lowercased().hasPrefix("0x") ? String(id.dropFirst(2)) : id
            guard digits.count <= 8, let number = UInt32(digits, radix: 16) else {
                throw FdiskError.invalidValue(id, reason: "an MBR disk identifier is up to 8 hexadecimal digits")
            }
            value = "0x" + String(number, radix: 16)
        }
        try call("fdisk_set_disklabel_id_from_string") { fdisk_set_disklabel_id_from_string(context, value) }
    }

    /// Adds a partition (in memory) and returns it as the table now records it.
    @discardableResult
    package func addPartition(_ spec: NewPartition) throws -> Partition {
        let kind = try requireKind()
        guard let label = fdisk_get_label(context, nil) else { throw FdiskError.noPartitionTable(path: path) }
        guard let entry = fdisk_new_partition() else {
            throw FdiskError.system(function: "fdisk_new_partition", path: path, errno: ENOMEM)
        }
        defer { fdisk_unref_partition(entry) }

        let type = try parttype(for: spec.type, kind: kind, label: label)
        defer { fdisk_unref_parttype(type) }
        try call("fdisk_partition_set_type") { fdisk_partition_set_type(entry, type) }
        if let name = spec.name {
            guard kind == .gpt else { throw FdiskError.unsupported("a partition name", table: kind.rawValue, path: path) }
            try call("fdisk_partition_set_name") { fdisk_partition_set_name(entry, name) }
        }
        if let uuid = spec.uuid {
            guard kind == .gpt else { throw FdiskError.unsupported("a partition GUID", table: kind.rawValue, path: path) }
            try call("fdisk_partition_set_uuid") { fdisk_partition_set_uuid(entry, uuid.uuidString) }
        }

        let sectorSize = self.sectorSize
        if let start = spec.startBytes {
            guard start % sectorSize == 0 else {
                throw FdiskError.invalidValue(String(start), reason: "a partition start must be a multiple of the \(sectorSize)-byte sector")
            }
            fdisk_partition_set_start(entry, start / sectorSize)
        } else {
            fdisk_partition_start_follow_default(entry, 1)
        }
        switch spec.size {
        case .bytes(let bytes):
            guard bytes > 0 else {
                throw FdiskError.doesNotFit(partition: describe(spec), requestedBytes: 0, availableBytes: 0, path: path)
            }
            let sectors = (bytes + sectorSize - 1) / sectorSize
            try checkFits(spec, sectors: sectors)
            fdisk_partition_set_size(entry, sectors)
        case .restOfDisk:
            fdisk_partition_end_follow_default(entry, 1)
        }
        fdisk_partition_partno_follow_default(entry, 1)

        var number = 0
        do {
            try call("fdisk_add_partition") { fdisk_add_partition(context, entry, &number) }
        } catch FdiskError.library(_, _, let code, _) where code == ENOSPC {
            // "Rest of disk" with no space left, or a start inside another partition.
            throw FdiskError.doesNotFit(partition: describe(spec), requestedBytes: 0,
                                        availableBytes: largestFreeBytes(), path: path)
        }
        if spec.bootable {
            let flag = kind == .dos ? UInt(DOS_FLAG_ACTIVE) : UInt(GPT_FLAG_LEGACYBOOT)
            try call("fdisk_toggle_partition_flag") { fdisk_toggle_partition_flag(context, number, flag) }
        }
        return try partition(index: number)
    }

    /// True when the table in memory differs from the disk. libfdisk also sets this when it
    /// opens a GPT disk whose backup header is not at the end (a disk image written to a larger
    /// disk): it moves the backup header and the last usable sector, and `write()` stores that.
    package var hasUnwrittenChanges: Bool {
        guard let label = fdisk_get_label(context, nil) else { return false }
        return fdisk_label_is_changed(label) != 0
    }

    /// Changes the size of partition `number` in place (its start stays). `.restOfDisk` extends
    /// it over the free space right after it, its end aligned down to the alignment grain.
    /// A size that does not fit the free space after the partition is an error, not silently
    /// shrunk.
    @discardableResult
    package func resizePartition(_ number: Int, to size: PartitionSize) throws -> Partition {
        _ = try requireKind()
        let current = try partition(number: number)
        let sectorSize = self.sectorSize
        // The last sector the partition may reach: the end of the free region after it, or its own end.
        let limit = freeRegions().first { $0.lowerBound == current.endSector + 1 }?.upperBound ?? current.endSector
        let sectors: UInt64
        switch size {
        case .bytes(let bytes):
            sectors = (bytes + sectorSize - 1) / sectorSize
            guard sectors > 0, current.startSector + sectors - 1 <= limit else {
                throw FdiskError.doesNotFit(partition: "\(number)\(current.name.map { " (\($0))" } ?? "")",
                                            requestedBytes: sectors * sectorSize,
                                            availableBytes: (limit - current.startSector + 1) * sectorSize, path: path)
            }
        case .restOfDisk:
            let grain = max(1, UInt64(fdisk_get_grain_size(context)) / sectorSize)
            let alignedEnd = (limit + 1) / grain * grain - 1
            let end = alignedEnd > current.endSector ? alignedEnd : limit
            sectors = end - current.startSector + 1
        }
        guard let entry = fdisk_new_partition() else {
            throw FdiskError.system(function: "fdisk_new_partition", path: path, errno: ENOMEM)
        }
        defer { fdisk_unref_partition(entry) }
        try call("fdisk_partition_set_size") { fdisk_partition_set_size(entry, sectors) }
        try call("fdisk_set_partition") { fdisk_set_partition(context, number - 1, entry) }
        return try partition(index: number - 1)
    }

    /// Gives partition `number` a new GPT partition GUID (its PARTUUID).
    package func setPartitionUUID(_ number: Int, _ uuid: UUID) throws {
        let kind = try requireKind()
        guard kind == .gpt else { throw FdiskError.unsupported("a partition GUID", table: kind.rawValue, path: path) }
        _ = try partition(number: number)
        guard let entry = fdisk_new_partition() else {
            throw FdiskError.system(function: "fdisk_new_partition", path: path, errno: ENOMEM)
        }
        defer { fdisk_unref_partition(entry) }
        try call("fdisk_partition_set_uuid") { fdisk_partition_set_uuid(entry, uuid.uuidString) }
        try call("fdisk_set_partition") { fdisk_set_partition(context, number - 1, entry) }
    }

    /// The partition with this number (from 1), or an error naming the disk.
    package func partition(number: Int) throws -> Partition {
        guard let found = try partitions().first(where: { $0.number == number }) else {
            throw FdiskError.invalidValue(String(number), reason: "\(path) has no partition \(number)")
        }
        return found
    }

    /// The partitions in the table (in memory, including unwritten changes), by number.
    package func partitions() throws -> [Partition] {
        _ = try requireKind()
        var table: OpaquePointer?
        try call("fdisk_get_partitions") { fdisk_get_partitions(context, &table) }
        guard let table else { return [] }
        defer { fdisk_unref_table(table) }
        var result: [Partition] = []
        for index in 0..<fdisk_table_get_nents(table) {
            guard let entry = fdisk_table_get_partition(table, index), fdisk_partition_is_used(entry) != 0 else { continue }
            result.append(try makePartition(entry))
        }
        return result.sorted { $0.number < $1.number }
    }

    /// Writes the table to the disk and flushes it to stable storage (fsync). Until this
    /// returns, the file still holds what it held before.
    package func write() throws {
        guard !readOnly else { throw FdiskError.readOnly(path: path) }
        try call("fdisk_write_disklabel") { fdisk_write_disklabel(context) }
        // swift-system has no fsync.
        guard fsync(file.rawValue) == 0 else { throw FdiskError.system(function: "fsync", path: path, errno: errno) }
    }

    /// The messages libfdisk printed (warnings and information), oldest first.
    package var libraryMessages: [String] { messages.all }

    // MARK: - Internals

    private func requireKind() throws -> PartitionTableKind {
        guard let kind else { throw FdiskError.noPartitionTable(path: path) }
        return kind
    }

    /// Runs one libfdisk call; negative results become errors with libfdisk's last message.
    private func call(_ function: String, _ body: () -> Int32) throws {
        messages.startCall()
        let result = body()
        guard result < 0 else { return }
        throw FdiskError.library(function: function, path: path, errno: -result, message: messages.lastOfCall)
    }

    private func parttype(for type: PartitionType, kind: PartitionTableKind, label: OpaquePointer) throws -> OpaquePointer {
        switch kind {
        case .gpt:
            guard let guid = type.gptGUID else {
                throw FdiskError.typeNotSupported(type: type.description, table: kind.rawValue, path: path)
            }
            // Known GUIDs come from libfdisk's table (with their names); others are accepted
            // as "unknown" types, which GPT allows.
            if let known = fdisk_label_get_parttype_from_string(label, guid) {
                fdisk_ref_parttype(known)
                return known
            }
            guard let unknown = fdisk_new_unknown_parttype(0, guid) else {
                throw FdiskError.system(function: "fdisk_new_unknown_parttype", path: path, errno: ENOMEM)
            }
            return unknown
        case .dos:
            guard let code = type.mbrCode else {
                throw FdiskError.typeNotSupported(type: type.description, table: kind.rawValue, path: path)
            }
            if let known = fdisk_label_get_parttype_from_code(label, UInt32(code)) {
                fdisk_ref_parttype(known)
                return known
            }
            guard let unknown = fdisk_new_unknown_parttype(UInt32(code), nil) else {
                throw FdiskError.system(function: "fdisk_new_unknown_parttype", path: path, errno: ENOMEM)
            }
            return unknown
        }
    }

    private func partition(index: Int) throws -> Partition {
        var entry: OpaquePointer?
        try call("fdisk_get_partition") { fdisk_get_partition(context, index, &entry) }
        guard let entry else { throw FdiskError.library(function: "fdisk_get_partition", path: path, errno: ENOENT, message: nil) }
        defer { fdisk_unref_partition(entry) }
        return try makePartition(entry)
    }

    private func makePartition(_ entry: OpaquePointer) throws -> Partition {
        let index = fdisk_partition_get_partno(entry)
        let kind = try requireKind()
        var type = PartitionType.mbr(0)
        var typeName: String?
        if let raw = fdisk_partition_get_type(entry) {
            typeName = fdisk_parttype_get_name(raw).map { String(cString: $0) }
            switch kind {
            case .gpt:
                let guid = fdisk_parttype_get_string(raw).map { String(cString: $0) } ?? ""
                type = (try? PartitionType.gpt(guid)) ?? PartitionType(gptGUID: guid.uppercased(), mbrCode: nil, name: nil)
            case .dos:
                type = .mbr(UInt8(truncatingIfNeeded: fdisk_parttype_get_code(raw)))
            }
        }
        let uuid: String?
        switch kind {
        case .gpt:
            uuid = fdisk_partition_get_uuid(entry).map { String(cString: $0).lowercased() }
        case .dos:
            uuid = try diskID() + String(format: "-%02x", index + 1)
        }
        let name = kind == .gpt ? fdisk_partition_get_name(entry).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } : nil
        let bootable: Bool
        if kind == .gpt {
            var attributes: UInt64 = 0
            bootable = fdisk_gpt_get_partition_attrs(context, index, &attributes) == 0
                && attributes & (1 << 2) != 0
        } else {
            bootable = fdisk_partition_is_bootable(entry) != 0
        }
        return Partition(number: index + 1, startSector: fdisk_partition_get_start(entry),
                         sizeSectors: fdisk_partition_get_size(entry), sectorSize: sectorSize,
                         type: type, typeName: typeName, name: name, uuid: uuid, bootable: bootable)
    }

    /// libfdisk quietly shrinks a partition that is too large to the free space left;
    /// a size the recipe asked for must fit or be an error that says so.
    private func checkFits(_ spec: NewPartition, sectors: UInt64) throws {
        let free = freeRegions()
        let fits: Bool
        if let start = spec.startBytes.map({ $0 / sectorSize }) {
            fits = free.contains { $0.contains(start) && start + sectors - 1 <= $0.upperBound }
        } else {
            fits = free.contains { UInt64($0.count) >= sectors }
        }
        guard fits else {
            throw FdiskError.doesNotFit(partition: describe(spec), requestedBytes: sectors * sectorSize,
                                        availableBytes: largestFreeBytes(), path: path)
        }
    }

    private func freeRegions() -> [ClosedRange<UInt64>] {
        var table: OpaquePointer?
        guard fdisk_get_freespaces(context, &table) == 0, let table else { return [] }
        defer { fdisk_unref_table(table) }
        var regions: [ClosedRange<UInt64>] = []
        for index in 0..<fdisk_table_get_nents(table) {
            guard let entry = fdisk_table_get_partition(table, index), fdisk_partition_has_start(entry) != 0,
                  fdisk_partition_has_size(entry) != 0 else { continue }
            let start = fdisk_partition_get_start(entry)
            let size = fdisk_partition_get_size(entry)
            if size > 0 { regions.append(start...(start + size - 1)) }
        }
        return regions
    }

    private func largestFreeBytes() -> UInt64 {
        (freeRegions().map { UInt64($0.count) }.max() ?? 0) * sectorSize
    }

    private func describe(_ spec: NewPartition) -> String {
        let number = (try? partitions().count).map { "\($0 + 1)" } ?? "?"
        return spec.name.map { "\(number) (\($0))" } ?? "\(number) (\(spec.type))"
    }
}

/// What libfdisk printed through its ask callback, kept per call for error messages.
private final class MessageLog {
    private(set) var all: [String] = []
    private var callStart = 0

    func startCall() { callStart = all.count }

    func append(_ message: String) { all.append(message) }

    var lastOfCall: String? { all.count > callStart ? all.last : nil }
}

/// libfdisk's ask callback: keeps warnings and information, refuses questions (dialogs are
/// disabled, so libfdisk should not ask any).
private func fdiskAskCallback(_ context: OpaquePointer?, _ ask: OpaquePointer?, _ data: UnsafeMutableRawPointer?) -> Int32 {
    guard let ask, let data else { return -EINVAL }
    let log = Unmanaged<MessageLog>.fromOpaque(data).takeUnretainedValue()
    switch UInt32(bitPattern: fdisk_ask_get_type(ask)) {
    case FDISK_ASKTYPE_WARN.rawValue, FDISK_ASKTYPE_WARNX.rawValue, FDISK_ASKTYPE_INFO.rawValue:
        var text = fdisk_ask_print_get_mesg(ask).map { String(cString: $0) } ?? ""
        let code = fdisk_ask_print_get_errno(ask)
        if fdisk_ask_get_type(ask) == Int32(FDISK_ASKTYPE_WARN.rawValue), code != 0 {
            text += ": " + String(cString: strerror(code))
        }
        log.append(text)
        return 0
    default:
        return -EINVAL
    }
}
