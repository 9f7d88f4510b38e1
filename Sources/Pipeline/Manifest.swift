import Foundation
import ImageSupport
import SnapshotTree

/// output/NAME.manifest.json: what an image is made of and how it was made.
public struct Manifest: Codable, Sendable {
    public struct Kernel: Codable, Sendable {
        public let package: String
        public let version: String
        public let release: String
        public let cacheHit: Bool
    }

    public struct Package: Codable, Sendable, Equatable {
        public let name: String
        public let version: String
    }

    public struct Disk: Codable, Sendable {
        public let sizeBytes: Int64
        public let usedBytes: Int64
        public let diskGUID: String
        public let partitions: [AttachedDisk.PartitionRecord]
        public let bootloader: String
        public let firmware: [String]
    }

    /// A user of the image and the SSH public keys the recipe gave them (what `rast-build vm`
    /// and `rast-build ssh` log in with).
    public struct User: Codable, Sendable, Equatable {
        public let name: String
        public let sshKeys: [String]

        public init(name: String, sshKeys: [String]) {
            self.name = name
            self.sshKeys = sshKeys
        }
    }

    public struct StageTiming: Codable, Sendable {
        public let stage: String
        public let seconds: Double
    }

    public struct Output: Codable, Sendable {
        public let file: String
        public let bytes: Int64
        /// Disk space the (sparse) file takes.
        public let allocatedBytes: Int64
        public let sha256: String
    }

    public let name: String
    public let recipeFile: String
    public let recipeHash: String
    public let rastVersion: String
    public let created: String
    public let kernel: Kernel?
    public let packages: [Package]
    public let disk: Disk
    public let filesystemUUID: String
    public let rootPartitionUUID: String
    public let snapshots: [SnapshotRecord]
    public let deployed: Int
    /// `rast tree` of the image, as the boot test expects the guest to print it.
    public let tree: [String]
    public let stageTimings: [StageTiming]
    public let outputs: [Output]
    public let bootTests: [BootTestResult]
    /// The recipe's users, in order (nil in manifests written before it was recorded).
    public var users: [User]? = nil

    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(self)) + [10]
    }

    public static func load(_ path: String) throws -> Manifest {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return try JSONDecoder().decode(Manifest.self, from: data)
    }
}
