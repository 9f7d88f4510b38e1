import Foundation
import TOML

/// One `[[containers]]` table: an image pulled into the image's container store at build
/// time, and, when it has a `name`, a container of that image started at every boot.
package struct ContainerSpec: Sendable, Equatable {
    /// A registry reference (`REGISTRY/REPOSITORY[:TAG]`) or `oci:DIR[:REF]`; a relative DIR
    /// is made absolute against the recipe's directory.
    package var image: String
    /// The name the image gets in the store (default: the reference, or DIRNAME:REF).
    package var imageName: String?
    /// The container to start at boot, if any.
    package var name: String?
    package var command: [String] = []
    package var environment: [String] = []
    /// `HOST:CONTAINER[:ro]`.
    package var volumes: [String] = []
    package enum Network: String, Sendable, CaseIterable {
        /// A network namespace of its own with only the loopback interface.
        case none
        /// The host's network namespace.
        case host
    }

    package var network = Network.none
    package var memory: Int64?
    package var cpus: Double?
    package var pidsLimit: Int64?
    package var readOnly = false
    package var user: String?
    /// When s6 starts the boot container again: no (the default), always, on-failure or
    /// on-failure:MAX (the image needs s6).
    package var restart = "no"

    package init(image: String) {
        self.image = image
    }

    /// Whether a container is started at boot.
    package var startsAtBoot: Bool { name != nil }
}

extension RecipeDecoder {
    func decodeContainers(_ top: TableReader) -> [ContainerSpec] {
        guard let tables = top.arrayOfTables("containers", known: RecipeSchema.containers.keyNames) else { return [] }
        var specs: [ContainerSpec] = []
        var names: [Located<String>] = []
        for table in tables {
            guard let image = table.requiredString("image") else { continue }
            var spec = ContainerSpec(image: image.value)
            if image.value.hasPrefix("oci:") {
                var directory = String(image.value.dropFirst(4))
                var reference = ""
                if let colon = directory.lastIndex(of: ":"), !directory[directory.index(after: colon)...].contains("/") {
                    reference = String(directory[colon...])
                    directory = String(directory[..<colon])
                }
                let absolute = resolve(directory)
                if directory.isEmpty || !FileManager.default.fileExists(atPath: absolute + "/index.json") {
                    diagnostics.error("'\(directory)' is not an OCI image layout (no index.json in \(absolute))", at: image.position, key: image.keyPath)
                }
                spec.image = "oci:" + absolute + reference
            } else if image.value.isEmpty || image.value.contains(" ") {
                diagnostics.error("'\(image.value)' is not an image reference such as docker.io/library/busybox:1.36 or oci:DIR:TAG",
                                  at: image.position, key: image.keyPath)
            }
            spec.imageName = table.string("image_name")?.value
            if let name = table.string("name") {
                if Self.isValidContainerName(name.value) {
                    names.append(name)
                } else {
                    diagnostics.error("'\(name.value)' is not a container name: a letter or digit, then letters, digits, '_', '.' or '-'",
                                      at: name.position, key: name.keyPath)
                }
                spec.name = name.value
            }
            spec.command = table.stringArray("command")?.value.map(\.value) ?? []
            spec.environment = table.stringArray("environment")?.value.map(\.value) ?? []
            for volume in table.stringArray("volumes")?.value ?? [] {
                let parts = volume.value.split(separator: ":", omittingEmptySubsequences: false)
                if !(2...3).contains(parts.count) || !parts[0].hasPrefix("/") || !parts[1].hasPrefix("/") || (parts.count == 3 && !["ro", "rw"].contains(parts[2])) {
                    diagnostics.error("'\(volume.value)' is not HOST:CONTAINER[:ro] with absolute paths", at: volume.position, key: volume.keyPath)
                }
                spec.volumes.append(volume.value)
            }
            if let network = table.string("network") {
                if let mode = ContainerSpec.Network(rawValue: network.value) { spec.network = mode } else {
                    diagnostics.error("'\(network.value)' is not a network mode: none or host", at: network.position, key: network.keyPath)
                }
            }
            spec.memory = table.size("memory")?.value
            if let cpus = table.value("cpus") {
                let number = cpus.value.float ?? cpus.value.integer.map(Double.init)
                if let number, number > 0 { spec.cpus = number } else {
                    diagnostics.error("expected a number of CPUs above 0, such as 0.5", at: cpus.position, key: cpus.keyPath)
                }
            }
            if let pids = table.integer("pids_limit") {
                if pids.value >= 1 { spec.pidsLimit = pids.value } else {
                    diagnostics.error("the limit must be at least 1", at: pids.position, key: pids.keyPath)
                }
            }
            spec.readOnly = table.boolean("read_only")?.value ?? false
            spec.user = table.string("user")?.value
            if let restart = table.string("restart") {
                let maximum = restart.value.hasPrefix("on-failure:") ? Int(restart.value.dropFirst("on-failure:".count)) : nil
                if ["no", "always", "on-failure"].contains(restart.value) || (maximum ?? 0) >= 1 { spec.restart = restart.value } else {
                    diagnostics.error("'\(restart.value)' is not a restart policy: no, always, on-failure or on-failure:MAX (MAX at least 1)",
                                      at: restart.position, key: restart.keyPath)
                }
                if spec.name == nil, spec.restart != "no" {
                    diagnostics.error("restart needs a name: only a named container is started at boot", at: restart.position, key: restart.keyPath)
                }
            }
            if spec.name == nil, !spec.command.isEmpty || !spec.volumes.isEmpty || !spec.environment.isEmpty {
                diagnostics.error("container options need a name: only a named container is started at boot", at: image.position, key: image.keyPath)
            }
            specs.append(spec)
        }
        reportDuplicates(names) { "container name '\($0)'" }
        return specs
    }

    static func isValidContainerName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.count <= 128, first.isASCII,
              first.properties.isAlphabetic || ("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "_.-".unicodeScalars.contains($0)) }
    }
}
