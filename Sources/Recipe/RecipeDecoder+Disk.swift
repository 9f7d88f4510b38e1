import TOML

extension RecipeDecoder {
    // MARK: [disk], [output], [boot_test]

    static let defaultDisk = DiskSpec(size: 2 << 30, biosBootSize: 1 << 20, espSize: 64 << 20, filesystemLabel: "rastos",
                                      compression: BtrfsCompression(algorithm: .zstd, level: nil), bootloader: .grub,
                                      firmware: [.bios, .uefi])

    func decodeDisk(_ top: TableReader) -> DiskSpec {
        var disk = RecipeDecoder.defaultDisk
        guard let table = top.table("disk", known: RecipeSchema.disk.keyNames) else { return disk }
        var sizesValid = true
        func partitionSize(_ key: String) -> Int64? {
            guard table.has(key) else { return nil }
            guard let located = table.size(key) else {
                sizesValid = false
                return nil
            }
            if located.value == 0 || located.value % DiskSpec.mebibyte != 0 {
                diagnostics.error("\(Recipe.describeSize(located.value)) is not a whole, non-zero number of MiB (partitions are aligned to 1 MiB)",
                                  at: located.position, key: located.keyPath)
                sizesValid = false
                return nil
            }
            return located.value
        }
        if let size = partitionSize("size") { disk.size = size }
        if let size = partitionSize("bios_boot_size") { disk.biosBootSize = size }
        if let size = partitionSize("esp_size") {
            if size < DiskSpec.minimumESPSize {
                diagnostics.error("an ESP of \(Recipe.describeSize(size)) is too small: FAT32 needs at least 32 MiB",
                                  at: table.value("esp_size")?.position ?? table.position, key: "disk.esp_size")
                sizesValid = false
            } else {
                disk.espSize = size
            }
        }
        if let label = table.string("filesystem_label") {
            if label.value.isEmpty || label.value.utf8.count > 255 || label.value.unicodeScalars.contains(where: { $0.value < 0x20 }) {
                diagnostics.error("a btrfs label must be 1 to 255 bytes without control characters", at: label.position, key: label.keyPath)
            } else {
                disk.filesystemLabel = label.value
            }
        }
        if let located = table.string("compression"), let compression = parseCompression(located) {
            disk.compression = compression
        }
        if let located = table.string("bootloader") {
            if let bootloader = Bootloader(rawValue: located.value) {
                disk.bootloader = bootloader
            } else {
                diagnostics.error("'\(located.value)' is not a boot loader: use \"grub\" or \"limine\"", at: located.position, key: located.keyPath)
            }
        }
        if let firmware = firmwareList(table, key: "firmware") { disk.firmware = firmware }

        if sizesValid {
            let bios = disk.hasBIOSBootPartition ? disk.biosBootSize : 0
            let needed = DiskSpec.leadingSpace + bios + disk.espSize + DiskSpec.minimumRootSize + DiskSpec.trailingSpace
            if disk.size < needed {
                var parts = ["1 MiB (GPT and alignment)"]
                if disk.hasBIOSBootPartition { parts.append("\(mib(disk.biosBootSize)) (BIOS boot)") }
                parts += ["\(mib(disk.espSize)) (ESP)", "256 MiB (smallest root)", "1 MiB (backup GPT)"]
                diagnostics.error("a disk of \(mib(disk.size)) is too small for its partitions: it needs \(parts.joined(separator: " + ")) = \(mib(needed))",
                                  at: table.value("size")?.position ?? table.position, key: "disk.size")
            }
        }
        return disk
    }

    func mib(_ bytes: Int64) -> String {
        bytes % DiskSpec.mebibyte == 0 ? "\(bytes / DiskSpec.mebibyte) MiB" : Recipe.describeSize(bytes)
    }

    func parseCompression(_ located: Located<String>) -> BtrfsCompression? {
        let parts = located.value.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        guard let algorithm = BtrfsCompression.Algorithm(rawValue: String(parts[0])) else {
            diagnostics.error("'\(located.value)' is not a btrfs compression: use none, zlib, lzo or zstd (zlib:N and zstd:N set a level)",
                              at: located.position, key: located.keyPath)
            return nil
        }
        guard parts.count == 2 else { return BtrfsCompression(algorithm: algorithm, level: nil) }
        let levels: ClosedRange<Int>? = algorithm == .zlib ? 1...9 : algorithm == .zstd ? 1...15 : nil
        guard let levels else {
            diagnostics.error("\(algorithm.rawValue) has no compression levels: write \"\(algorithm.rawValue)\"", at: located.position, key: located.keyPath)
            return nil
        }
        guard let level = Int(parts[1]), levels.contains(level) else {
            diagnostics.error("'\(parts[1])' is not a \(algorithm.rawValue) level: use \(levels.lowerBound) to \(levels.upperBound)",
                              at: located.position, key: located.keyPath)
            return nil
        }
        return BtrfsCompression(algorithm: algorithm, level: level)
    }

    /// A non-empty list of distinct firmware names.
    func firmwareList(_ table: TableReader, key: String) -> [Firmware]? {
        guard let located = table.stringArray(key) else { return nil }
        if located.value.isEmpty {
            if table.value(key)?.value.array?.isEmpty == true {
                diagnostics.error("list at least one firmware: \"bios\", \"uefi\" or both", at: located.position, key: located.keyPath)
            }
            return nil
        }
        var result: [Firmware] = []
        var valid = true
        for name in located.value {
            guard let firmware = Firmware(rawValue: name.value) else {
                diagnostics.error("'\(name.value)' is not a firmware: use \"bios\" or \"uefi\"", at: name.position, key: name.keyPath)
                valid = false
                continue
            }
            result.append(firmware)
        }
        reportDuplicates(located.value) { "firmware '\($0)'" }
        return valid && Set(result).count == result.count && result.count == located.value.count ? result : nil
    }

    func decodeOutput(_ top: TableReader) -> OutputSpec {
        var output = OutputSpec(directory: Paths.resolve("output", relativeTo: workingDirectory), formats: [.raw, .qcow2],
                                qcow2Compression: .zstd, qcow2ClusterSize: 64 << 10)
        guard let table = top.table("output", known: RecipeSchema.output.keyNames) else { return output }
        if let directory = table.string("directory") {
            if directory.value.isEmpty {
                diagnostics.error("the output directory is empty", at: directory.position, key: directory.keyPath)
            } else {
                output.directory = Paths.resolve(directory.value, relativeTo: workingDirectory)
            }
        }
        if let formats = table.stringArray("formats") {
            var result: [OutputFormat] = []
            for name in formats.value {
                if let format = OutputFormat(rawValue: name.value) {
                    result.append(format)
                } else {
                    diagnostics.error("'\(name.value)' is not an output format: use \"raw\" or \"qcow2\"", at: name.position, key: name.keyPath)
                }
            }
            reportDuplicates(formats.value) { "format '\($0)'" }
            if formats.value.isEmpty {
                diagnostics.error("list at least one output format: \"raw\", \"qcow2\" or both", at: formats.position, key: formats.keyPath)
            }
            if !result.isEmpty { output.formats = result.reduce(into: []) { if !$0.contains($1) { $0.append($1) } } }
        }
        if let located = table.string("qcow2_compression") {
            if let compression = QCOW2Compression(rawValue: located.value) {
                output.qcow2Compression = compression
            } else {
                diagnostics.error("'\(located.value)' is not a qcow2 compression: use none, zlib or zstd", at: located.position, key: located.keyPath)
            }
        }
        if let located = table.size("qcow2_cluster_size") {
            if Checks.isPowerOfTwo(located.value), (512...(2 << 20)).contains(located.value) {
                output.qcow2ClusterSize = located.value
            } else {
                diagnostics.error("a qcow2 cluster size must be a power of two from 512 bytes to 2 MiB, not \(Recipe.describeSize(located.value))",
                                  at: located.position, key: located.keyPath)
            }
        }
        return output
    }

    func decodeBootTest(_ top: TableReader, disk: DiskSpec) -> BootTestSpec {
        var test = BootTestSpec(enabled: true, firmware: disk.firmware, timeout: 300, memory: 512 << 20)
        guard let table = top.table("boot_test", known: RecipeSchema.bootTest.keyNames) else { return test }
        if let enabled = table.boolean("enabled") { test.enabled = enabled.value }
        if let firmware = firmwareList(table, key: "firmware") {
            test.firmware = firmware
            for (index, item) in firmware.enumerated() where !disk.firmware.contains(item) {
                let path = "boot_test.firmware[\(index)]"
                diagnostics.error("'\(item.rawValue)' is not in disk.firmware (\(disk.firmware.map(\.rawValue).joined(separator: ", "))): the image cannot boot with it",
                                  at: diagnostics.positions[path] ?? table.position, key: path)
            }
        }
        if let timeout = table.integer("timeout") {
            if (1...86_400).contains(timeout.value) {
                test.timeout = Int(timeout.value)
            } else {
                diagnostics.error("a timeout of \(timeout.value) seconds is out of range: use 1 to 86400", at: timeout.position, key: timeout.keyPath)
            }
        }
        if let memory = table.size("memory") {
            if memory.value >= 64 << 20, memory.value % DiskSpec.mebibyte == 0 {
                test.memory = memory.value
            } else {
                diagnostics.error("guest memory must be a whole number of MiB, at least 64 MiB, not \(Recipe.describeSize(memory.value))",
                                  at: memory.position, key: memory.keyPath)
            }
        }
        return test
    }
}
