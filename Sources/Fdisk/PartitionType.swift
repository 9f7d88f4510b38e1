import Foundation

/// A partition type: a GPT type GUID, an MBR type code, or one of the named types that
/// have both (EFI system, Linux).
package struct PartitionType: Sendable, Hashable, CustomStringConvertible {
    /// The GPT type GUID in upper case; nil for types that only exist in MBR tables.
    package let gptGUID: String?
    /// The MBR (dos) type code; nil for types that only exist in GPT.
    package let mbrCode: UInt8?
    /// The short name this type was made from ("esp"), if it is a named type.
    package let name: String?

    init(gptGUID: String?, mbrCode: UInt8?, name: String?) {
        self.gptGUID = gptGUID
        self.mbrCode = mbrCode
        self.name = name
    }

    /// BIOS boot partition: where GRUB's core image lives on a GPT disk booted by a BIOS.
    package static let biosBoot = PartitionType(gptGUID: "21686148-6449-6E6F-744E-656564454649", mbrCode: nil, name: "bios-boot")
    /// EFI system partition (ESP).
    package static let efiSystem = PartitionType(gptGUID: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", mbrCode: 0xEF, name: "esp")
    /// Linux root for x86-64 (Discoverable Partitions Specification).
    package static let linuxRootX86_64 = PartitionType(gptGUID: "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", mbrCode: 0x83, name: "linux-root-x86-64")
    /// Generic Linux filesystem data.
    package static let linuxFilesystem = PartitionType(gptGUID: "0FC63DAF-8483-4772-8E79-3D69D8477DE4", mbrCode: 0x83, name: "linux")

    /// Names accepted by `init(parsing:)`, with their aliases.
    package static let named: [String: PartitionType] = [
        "bios-boot": .biosBoot, "bios": .biosBoot,
        "esp": .efiSystem, "efi-system": .efiSystem, "efi": .efiSystem,
        "linux-root-x86-64": .linuxRootX86_64, "root-x86-64": .linuxRootX86_64, "root": .linuxRootX86_64,
        "linux": .linuxFilesystem, "linux-filesystem": .linuxFilesystem,
    ]

    /// A GPT type given by its GUID.
    package static func gpt(_ guid: String) throws -> PartitionType {
        guard let uuid = UUID(uuidString: guid) else {
            throw FdiskError.invalidType(guid, reason: "not a GUID (expected 8-4-4-4-12 hexadecimal digits)")
        }
        let canonical = uuid.uuidString
        if let known = named.values.first(where: { $0.gptGUID == canonical }) { return known }
        return PartitionType(gptGUID: canonical, mbrCode: nil, name: nil)
    }

    /// An MBR type given by its code (0x83 Linux, 0xEF EFI system, ...).
    package static func mbr(_ code: UInt8) -> PartitionType {
        PartitionType(gptGUID: nil, mbrCode: code, name: nil)
    }

    /// A type as a recipe writes it: a name ("bios-boot", "esp", "linux-root-x86-64",
    /// "linux"), a GPT GUID, or an MBR code in hexadecimal ("0x83", "83").
    package init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if let known = PartitionType.named[trimmed.lowercased()] {
            self = known
        } else if trimmed.count == 36, trimmed.contains("-") {
            self = try PartitionType.gpt(trimmed)
        } else {
            let digits = trimmed.lowercased().hasPrefix("0x") ? String(trimmed.dropFirst(2)) : trimmed
            guard (1...2).contains(digits.count), let code = UInt8(digits, radix: 16) else {
                let names = Set(PartitionType.named.keys).sorted().joined(separator: ", ")
                throw FdiskError.invalidType(text, reason: "expected a name (\(names)), a GPT type GUID or an MBR type code such as 0x83")
            }
            self = .mbr(code)
        }
    }

    package var description: String {
        if let name { return name }
        if let gptGUID { return gptGUID }
        return mbrCode.map { "0x" + String($0, radix: 16) } ?? "unknown"
    }
}
