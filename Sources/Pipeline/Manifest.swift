import Foundation
import ImageSupport
import SnapshotTree

/// output/NAME.manifest.json: what an image is made of and how it was made.
package struct Manifest: Codable, Sendable {
    package struct Kernel: Codable, Sendable {
        package let package: String
        package let version: String
        package let release: String
        package let cacheHit: Bool
    }

    package struct Package: Codable, Sendable, Equatable {
        package let name: String
        package let version: String
    }

    package struct Disk: Codable, Sendable {
        package let sizeBytes: Int64
        package let usedBytes: Int64
        package let diskGUID: String
        package let partitions: [AttachedDisk.PartitionRecord]
        package let bootloader: String
        package let firmware: [String]
    }

    /// A user of the image and the SSH public keys the recipe gave them (what `rast-build vm`
    /// and `rast-build ssh` log in with).
    package struct User: Codable, Sendable, Equatable {
        package let name: String
        package let sshKeys: [String]

        package init(name: String, sshKeys: [String]) {
            self.name = name
            self.sshKeys = sshKeys
        }
    }

    package struct StageTiming: Codable, Sendable {
        package let stage: String
        package let seconds: Double
    }

    package struct Output: Codable, Sendable {
        package let file: String
        package let bytes: Int64
        /// Disk space the (sparse) file takes.
        package let allocatedBytes: Int64
        package let sha256: String
    }

    package let name: String
    package let recipeFile: String
    package let recipeHash: String
    package let rastVersion: String
    package let created: String
    package let kernel: Kernel?
    package let packages: [Package]
    package let disk: Disk
    package let filesystemUUID: String
    package let rootPartitionUUID: String
    package let snapshots: [SnapshotRecord]
    package let deployed: Int
    /// `rast tree` of the image, as the boot test expects the guest to print it.
    package let tree: [String]
    package let stageTimings: [StageTiming]
    package let outputs: [Output]
    package let bootTests: [BootTestResult]
    /// The recipe's users, in order (nil in manifests written before it was recorded).
    package var users: [User]? = nil

    package func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self)) + [10]
    }

    package static func load(_ path: String) throws -> Manifest {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(Manifest.self, from: data)
    }
}
