// The part of the OCI runtime spec (config.json of a bundle) rast writes for crun.
// Field names follow the spec; nil fields are left out of the JSON.

/// `config.json` of an OCI bundle.
package struct RuntimeSpec: Codable, Sendable, Equatable {
    package var ociVersion = "1.0.2"
    package var process: Process
    package var root: Root
    package var hostname: String?
    package var mounts: [Mount]
    package var linux: Linux
    package var hooks: Hooks?
    package var annotations: [String: String]?

    /// Programs crun runs at points of the container's life (runtime spec "POSIX-platform Hooks").
    package struct Hooks: Codable, Sendable, Equatable {
        package var createRuntime: [Hook]?
        package var poststart: [Hook]?
        package var poststop: [Hook]?
    }

    package struct Hook: Codable, Sendable, Equatable {
        package var path: String
        package var args: [String]?
        package var timeout: Int?
    }

    package struct Process: Codable, Sendable, Equatable {
        package var terminal: Bool
        package var user: User
        package var args: [String]
        package var env: [String]
        package var cwd: String
        package var capabilities: Capabilities?
        package var rlimits: [Rlimit]?
        package var noNewPrivileges: Bool?
    }

    package struct User: Codable, Sendable, Equatable {
        package var uid: UInt32
        package var gid: UInt32
        package var additionalGids: [UInt32]?
    }

    package struct Capabilities: Codable, Sendable, Equatable {
        package var bounding: [String]
        package var effective: [String]
        package var permitted: [String]
        package var ambient: [String]?
    }

    package struct Rlimit: Codable, Sendable, Equatable {
        package var type: String
        package var hard: UInt64
        package var soft: UInt64
    }

    package struct Root: Codable, Sendable, Equatable {
        package var path: String
        package var readonly: Bool
    }

    package struct Mount: Codable, Sendable, Equatable {
        package var destination: String
        package var type: String
        package var source: String
        package var options: [String]?
    }

    package struct Linux: Codable, Sendable, Equatable {
        package var namespaces: [Namespace]
        package var uidMappings: [IDMapping]?
        package var gidMappings: [IDMapping]?
        package var resources: Resources?
        package var cgroupsPath: String?
        package var maskedPaths: [String]?
        package var readonlyPaths: [String]?
    }

    package struct Namespace: Codable, Sendable, Equatable {
        package var type: String
        package var path: String?

        package init(_ type: String) {
            self.type = type
            path = nil
        }
    }

    package struct IDMapping: Codable, Sendable, Equatable {
        package var containerID: UInt32
        package var hostID: UInt32
        package var size: UInt32
    }

    package struct Resources: Codable, Sendable, Equatable {
        package var devices: [DeviceRule]?
        package var memory: Memory?
        package var cpu: CPU?
        package var pids: Pids?
    }

    package struct DeviceRule: Codable, Sendable, Equatable {
        package var allow: Bool
        package var type: String?
        package var major: Int64?
        package var minor: Int64?
        package var access: String?
    }

    package struct Memory: Codable, Sendable, Equatable {
        package var limit: Int64?
        package var swap: Int64?
    }

    package struct CPU: Codable, Sendable, Equatable {
        package var quota: Int64?
        package var period: UInt64?
    }

    package struct Pids: Codable, Sendable, Equatable {
        package var limit: Int64
    }
}
