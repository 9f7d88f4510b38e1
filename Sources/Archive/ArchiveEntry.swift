import CArchive
#if canImport(Glibc)
import Glibc
#endif

/// Who owns an entry in an archive.
package struct Ownership: Sendable, Equatable {
    package var uid: Int64
    package var gid: Int64
    package var userName: String?
    package var groupName: String?

    package init(uid: Int64, gid: Int64, userName: String? = nil, groupName: String? = nil) {
        self.uid = uid
        self.gid = gid
        self.userName = userName
        self.groupName = groupName
    }

    /// root:root (0:0), what packages carry.
    package static let root = Ownership(uid: 0, gid: 0, userName: "root", groupName: "root")
}

/// The metadata of one archive entry, as listed by `bsdtar -tv`.
package struct ArchiveEntry: Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        case regular, directory, symlink, hardlink, characterDevice, blockDevice, fifo, socket
    }

    package var path: String
    package var kind: Kind
    /// Size of the entry's data in bytes (0 for directories, links and hard links).
    package var size: Int64
    /// Permission bits including setuid/setgid/sticky (`mode & 0o7777`).
    package var permissions: UInt32
    package var owner: Ownership
    /// Modification time in seconds since the epoch.
    package var modificationTime: Int64
    /// Target of a symlink, or the path a hard link refers to.
    package var linkTarget: String?

    package init(path: String, kind: Kind, size: Int64 = 0, permissions: UInt32, owner: Ownership = .root,
                modificationTime: Int64 = 0, linkTarget: String? = nil) {
        self.path = path
        self.kind = kind
        self.size = size
        self.permissions = permissions
        self.owner = owner
        self.modificationTime = modificationTime
        self.linkTarget = linkTarget
    }

    /// The `ls -l` style mode column bsdtar prints ("-rwxr-xr-x", "hrw-r--r--" for hard links).
    package var modeString: String {
        let type: Character
        switch kind {
        case .regular: type = "-"
        case .directory: type = "d"
        case .symlink: type = "l"
        case .hardlink: type = "h"
        case .characterDevice: type = "c"
        case .blockDevice: type = "b"
        case .fifo: type = "p"
        case .socket: type = "s"
        }
        var text = String(type)
        let bits: [(UInt32, Character)] = [
            (0o400, "r"), (0o200, "w"), (0o100, "x"), (0o040, "r"), (0o020, "w"), (0o010, "x"),
            (0o004, "r"), (0o002, "w"), (0o001, "x"),
        ]
        for (index, (bit, letter)) in bits.enumerated() {
            var char: Character = permissions & bit != 0 ? letter : "-"
            if index == 2, permissions & 0o4000 != 0 { char = permissions & 0o100 != 0 ? "s" : "S" }
            if index == 5, permissions & 0o2000 != 0 { char = permissions & 0o010 != 0 ? "s" : "S" }
            if index == 8, permissions & 0o1000 != 0 { char = permissions & 0o001 != 0 ? "t" : "T" }
            text.append(char)
        }
        return text
    }

    package var description: String {
        var text = "\(modeString) \(owner.userName ?? String(owner.uid))/\(owner.groupName ?? String(owner.gid)) \(size) \(path)"
        switch kind {
        case .symlink: text += " -> \(linkTarget ?? "")"
        case .hardlink: text += " link to \(linkTarget ?? "")"
        default: break
        }
        return text
    }

    /// The file type bits libarchive expects for this kind (hard links are regular files).
    var fileType: mode_t {
        switch kind {
        case .regular, .hardlink: return rast_ae_ifreg()
        case .directory: return rast_ae_ifdir()
        case .symlink: return rast_ae_iflnk()
        case .characterDevice: return rast_ae_ifchr()
        case .blockDevice: return rast_ae_ifblk()
        case .fifo: return rast_ae_ififo()
        case .socket: return rast_ae_ifsock()
        }
    }

    /// Reads the metadata out of a libarchive entry.
    init(_ entry: OpaquePointer) {
        path = archive_entry_pathname(entry).map { String(cString: $0) } ?? ""
        let type = archive_entry_filetype(entry)
        let hardlink = archive_entry_hardlink(entry).map { String(cString: $0) }
        if let hardlink {
            kind = .hardlink
            linkTarget = hardlink
        } else {
            switch type {
            case rast_ae_ifdir(): kind = .directory
            case rast_ae_iflnk(): kind = .symlink
            case rast_ae_ifchr(): kind = .characterDevice
            case rast_ae_ifblk(): kind = .blockDevice
            case rast_ae_ififo(): kind = .fifo
            case rast_ae_ifsock(): kind = .socket
            default: kind = .regular
            }
            linkTarget = kind == .symlink ? archive_entry_symlink(entry).map { String(cString: $0) } : nil
        }
        size = archive_entry_size_is_set(entry) != 0 ? archive_entry_size(entry) : 0
        permissions = UInt32(archive_entry_perm(entry)) & 0o7777
        owner = Ownership(uid: archive_entry_uid(entry), gid: archive_entry_gid(entry),
                          userName: archive_entry_uname(entry).map { String(cString: $0) },
                          groupName: archive_entry_gname(entry).map { String(cString: $0) })
        modificationTime = Int64(archive_entry_mtime(entry))
    }

    /// Fills a fresh libarchive entry with this metadata.
    func fill(_ entry: OpaquePointer) {
        archive_entry_set_pathname(entry, path)
        archive_entry_set_filetype(entry, UInt32(fileType))
        archive_entry_set_perm(entry, mode_t(permissions & 0o7777))
        archive_entry_set_uid(entry, owner.uid)
        archive_entry_set_gid(entry, owner.gid)
        if let name = owner.userName { archive_entry_set_uname(entry, name) }
        if let name = owner.groupName { archive_entry_set_gname(entry, name) }
        archive_entry_set_mtime(entry, time_t(modificationTime), 0)
        switch kind {
        case .regular:
            archive_entry_set_size(entry, size)
        case .symlink:
            archive_entry_set_symlink(entry, linkTarget ?? "")
            archive_entry_set_size(entry, 0)
        case .hardlink:
            archive_entry_set_hardlink(entry, linkTarget ?? "")
            archive_entry_set_size(entry, 0)
        default:
            archive_entry_set_size(entry, 0)
        }
    }
}
