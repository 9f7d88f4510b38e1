// The part of the OCI runtime spec (config.json of a bundle) rast writes for crun.
// Field names follow the spec; nil fields are left out of the JSON.

/// `config.json` of an OCI bundle.
public struct RuntimeSpec: Codable, Sendable, Equatable {
    public var ociVersion = "1.0.2"
    public var process: Process
    public var root: Root
    public var hostname: String?
    public var mounts: [Mount]
    public var linux: Linux
    public var hooks: Hooks?
    public var annotations: [String: String]?

    /// Programs crun runs at points of the container's life (runtime spec "POSIX-platform Hooks").
    public struct Hooks: Codable, Sendable, Equatable {
        public var createRuntime: [Hook]?
        public var poststart: [Hook]?
        public var poststop: [Hook]?
    }

    public struct Hook: Codable, Sendable, Equatable {
        public var path: String
        public var args: [String]?
        public var timeout: Int?

        public init(path: String, args: [String]?, timeout: Int?) {
            self.path = path
            self.args = args
            self.timeout = timeout
        }
    }

    public struct Process: Codable, Sendable, Equatable {
        public var terminal: Bool
        public var user: User
        public var args: [String]
        public var env: [String]
        public var cwd: String
        public var capabilities: Capabilities?
        public var rlimits: [Rlimit]?
        public var noNewPrivileges: Bool?
    }

    public struct User: Codable, Sendable, Equatable {
        public var uid: UInt32
        public var gid: UInt32
        public var additionalGids: [UInt32]?
    }

    public struct Capabilities: Codable, Sendable, Equatable {
        public var bounding: [String]
        public var effective: [String]
        public var permitted: [String]
        public var ambient: [String]?
    }

    public struct Rlimit: Codable, Sendable, Equatable {
        public var type: String
        public var hard: UInt64
        public var soft: UInt64
    }

    public struct Root: Codable, Sendable, Equatable {
        public var path: String
        public var readonly: Bool

        public init(path: String, readonly: Bool) {
            self.path = path
            self.readonly = readonly
        }
    }

    public struct Mount: Codable, Sendable, Equatable {
        public var destination: String
        public var type: String
        public var source: String
        public var options: [String]?
    }

    public struct Linux: Codable, Sendable, Equatable {
        public var namespaces: [Namespace]
        public var uidMappings: [IDMapping]?
        public var gidMappings: [IDMapping]?
        public var resources: Resources?
        public var cgroupsPath: String?
        public var maskedPaths: [String]?
        public var readonlyPaths: [String]?
    }

    public struct Namespace: Codable, Sendable, Equatable {
        public var type: String
        public var path: String?

        public init(_ type: String) {
            self.type = type
            path = nil
        }
    }

    public struct IDMapping: Codable, Sendable, Equatable {
        public var containerID: UInt32
        public var hostID: UInt32
        public var size: UInt32

        public init(containerID: UInt32, hostID: UInt32, size: UInt32) {
            self.containerID = containerID
            self.hostID = hostID
            self.size = size
        }
    }

    public struct Resources: Codable, Sendable, Equatable {
        public var devices: [DeviceRule]?
        public var memory: Memory?
        public var cpu: CPU?
        public var pids: Pids?
    }

    public struct DeviceRule: Codable, Sendable, Equatable {
        public var allow: Bool
        public var type: String?
        public var major: Int64?
        public var minor: Int64?
        public var access: String?
    }

    public struct Memory: Codable, Sendable, Equatable {
        public var limit: Int64?
        public var swap: Int64?
    }

    public struct CPU: Codable, Sendable, Equatable {
        public var quota: Int64?
        public var period: UInt64?
    }

    public struct Pids: Codable, Sendable, Equatable {
        public var limit: Int64
    }
}
