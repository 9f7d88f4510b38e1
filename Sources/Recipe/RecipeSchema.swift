import Services

/// One key of a recipe table, declared once: the decoder's unknown-key check takes the key
/// lists from here, and a test checks that docs/recipe.md lists exactly these keys with these
/// types and defaults.
package struct RecipeKey: Sendable, Equatable {
    package let name: String
    /// The type as docs/recipe.md writes it: string, integer, boolean, number, size, table,
    /// array of strings, array of tables.
    package let type: String
    package let required: Bool
    /// The default as docs/recipe.md shows it in code font: a TOML value the decoder assumes
    /// when the key is absent (`"2G"`, `[]`, `false`), or what it is taken from
    /// (`disk.firmware`); nil when there is none or the docs describe it in words.
    package let defaultValue: String?
    /// One line about the key.
    package let summary: String

    init(_ name: String, _ type: String, required: Bool = false, default defaultValue: String? = nil, _ summary: String) {
        (self.name, self.type, self.required, self.defaultValue, self.summary) = (name, type, required, defaultValue, summary)
    }
}

/// A table of the recipe (`[disk]`) or the tables of an array (`[[users]]`), with its keys in
/// the order error messages list them.
package struct RecipeTableSchema: Sendable {
    /// The key path of the table: "" for the top level, "disk", "snapshots.tree".
    package let path: String
    package let isArray: Bool
    package let keys: [RecipeKey]

    /// The keys the decoder accepts here; any other is an error with a suggestion.
    package var keyNames: [String] { keys.map(\.name) }

    package func key(_ name: String) -> RecipeKey? { keys.first { $0.name == name } }
}

/// Every table and key a recipe may have.
package enum RecipeSchema {
    package static let topLevel = RecipeTableSchema(path: "", isArray: false, keys: [
        RecipeKey("name", "string", required: true, "The image's name, [a-z0-9-], also the output files' and the default host name"),
        RecipeKey("description", "string", "A sentence about the image, shown in the manifest"),
        RecipeKey("kernel", "table", "The kernel to build or install"),
        RecipeKey("packages", "table", required: true, "PKGBUILDs to build and the packages of snapshot 0"),
        RecipeKey("repositories", "array of tables", "Remote pacman repositories"),
        RecipeKey("system", "table", "Host name, time zone, locale, kernel arguments, root's password"),
        RecipeKey("users", "array of tables", "Users created in snapshot 0"),
        RecipeKey("files", "array of tables", "Files and directories copied into snapshot 0"),
        RecipeKey("snapshots", "table", "The snapshot tree the image starts with"),
        RecipeKey("disk", "table", "The disk layout, filesystem and boot loader"),
        RecipeKey("output", "table", "Where the images go and in which formats"),
        RecipeKey("boot_test", "table", "The QEMU boot test after the build"),
        RecipeKey("network", "table", "The first interface and the SSH server"),
        RecipeKey("services", "array of tables", "Supervised services of snapshot 0"),
        RecipeKey("containers", "array of tables", "Container images stored in the image and containers started at boot"),
    ])

    package static let kernel = RecipeTableSchema(path: "kernel", isArray: false, keys: [
        RecipeKey("source", "string", "A local tarball or source directory, or an https:// tarball URL"),
        RecipeKey("sha256", "string", "The SHA-256 of an https:// tarball"),
        RecipeKey("git", "string", "A git repository to build from"),
        RecipeKey("ref", "string", "The branch, tag or commit of a git source"),
        RecipeKey("packaged", "string", "A kernel package to install instead of building one"),
        RecipeKey("profile", "string", default: "\"base\"", "A profile in kernel-profiles/, merged on top of base"),
        RecipeKey("fragments", "array of strings", default: "[]", "Extra configuration fragments, merged after the profiles"),
        RecipeKey("options", "table", default: "{}", "Options applied last, CONFIG_NAME = value"),
        RecipeKey("strict", "boolean", default: "false", "Whether a requested option the configuration drops fails the build"),
        RecipeKey("package", "string", default: "\"linux-rast-PROFILE\"", "The package name of the built kernel"),
    ])
    /// The keys that say where the kernel comes from; exactly one is given.
    static let kernelOrigins = ["source", "git", "packaged"]
    /// The keys that do not apply to a packaged kernel.
    static let kernelBuildOnly = ["profile", "fragments", "options", "strict", "package"]

    package static let packages = RecipeTableSchema(path: "packages", isArray: false, keys: [
        RecipeKey("local", "array of strings", default: "[]", "PKGBUILD directories built into the local repository"),
        RecipeKey("aur", "array of strings", default: "[]", "AUR packages built like local ones"),
        RecipeKey("install", "array of strings", required: true, "The packages installed into snapshot 0"),
    ])

    package static let repositories = RecipeTableSchema(path: "repositories", isArray: true, keys: [
        RecipeKey("name", "string", required: true, "The repository name, unique"),
        RecipeKey("servers", "array of strings", required: true, "Server URLs tried in order"),
        RecipeKey("siglevel", "string", "A pacman SigLevel"),
    ])

    package static let system = RecipeTableSchema(path: "system", isArray: false, keys: [
        RecipeKey("hostname", "string", "An RFC 1123 label; the recipe's name by default"),
        RecipeKey("timezone", "string", default: "\"UTC\"", "A zoneinfo name"),
        RecipeKey("locale", "string", default: "\"C.UTF-8\"", "The system locale"),
        RecipeKey("kernel_cmdline", "string", default: "\"\"", "Extra kernel arguments for every boot entry"),
        RecipeKey("root_password_hash", "string", "A crypt(3) hash; without one root is locked"),
    ])

    package static let users = RecipeTableSchema(path: "users", isArray: true, keys: [
        RecipeKey("name", "string", required: true, "The user name, unique, not root"),
        RecipeKey("uid", "integer", "1 to 65533, unique"),
        RecipeKey("groups", "array of strings", default: "[]", "Supplementary groups, created when missing"),
        RecipeKey("shell", "string", default: "\"/bin/sh\"", "An absolute path"),
        RecipeKey("password_hash", "string", "A crypt(3) hash; without one no password matches"),
        RecipeKey("ssh_keys", "array of strings", default: "[]", "OpenSSH public keys for ~/.ssh/authorized_keys"),
    ])

    package static let files = RecipeTableSchema(path: "files", isArray: true, keys: [
        RecipeKey("source", "string", required: true, "A file or directory on the build machine"),
        RecipeKey("destination", "string", required: true, "The absolute path in the image, unique"),
        RecipeKey("mode", "string", "Permission bits as octal digits; the source's by default"),
    ])

    package static let snapshots = RecipeTableSchema(path: "snapshots", isArray: false, keys: [
        RecipeKey("tree", "array of tables", default: "[]", "The snapshots, each { id, parent, description }"),
        RecipeKey("deploy", "integer", default: "0", "The snapshot the image boots"),
    ])

    package static let snapshotTree = RecipeTableSchema(path: "snapshots.tree", isArray: true, keys: [
        RecipeKey("id", "integer", required: true, "1 or more, unique"),
        RecipeKey("parent", "integer", required: true, "0 or the id of another snapshot"),
        RecipeKey("description", "string", default: "\"\"", "Shown by rast tree"),
    ])

    package static let disk = RecipeTableSchema(path: "disk", isArray: false, keys: [
        RecipeKey("size", "size", default: "\"2G\"", "The whole image"),
        RecipeKey("bios_boot_size", "size", default: "\"1M\"", "The BIOS boot partition"),
        RecipeKey("esp_size", "size", default: "\"64M\"", "The EFI system partition, at least 32 MiB"),
        RecipeKey("filesystem_label", "string", default: "\"rastos\"", "The btrfs label"),
        RecipeKey("compression", "string", default: "\"zstd\"", "btrfs compression, optionally with a level"),
        RecipeKey("bootloader", "string", default: "\"grub\"", "grub or limine"),
        RecipeKey("firmware", "array of strings", default: "[\"bios\", \"uefi\"]", "The firmware the image boots with"),
    ])

    package static let output = RecipeTableSchema(path: "output", isArray: false, keys: [
        RecipeKey("directory", "string", default: "\"output\"", "Where the images go, relative to the current directory"),
        RecipeKey("formats", "array of strings", default: "[\"raw\", \"qcow2\"]", "raw, qcow2 or both"),
        RecipeKey("qcow2_compression", "string", default: "\"zstd\"", "none, zlib or zstd"),
        RecipeKey("qcow2_cluster_size", "size", default: "\"64K\"", "A power of two from 512 bytes to 2 MiB"),
    ])

    package static let bootTest = RecipeTableSchema(path: "boot_test", isArray: false, keys: [
        RecipeKey("enabled", "boolean", default: "true", "false skips the boot test"),
        RecipeKey("firmware", "array of strings", default: "disk.firmware", "The firmware to test with, a subset of disk.firmware"),
        RecipeKey("timeout", "integer", default: "300", "Seconds before a boot that has not reported success fails"),
        RecipeKey("memory", "size", default: "\"512M\"", "Guest memory"),
    ])

    package static let network = RecipeTableSchema(path: "network", isArray: false, keys: [
        RecipeKey("mode", "string", default: "\"dhcp\"", "dhcp, static or none"),
        RecipeKey("interface", "string", default: "\"eth0\"", "The interface name"),
        RecipeKey("address", "string", "ADDRESS/PREFIX, static only and required there"),
        RecipeKey("gateway", "string", "The default route, static only"),
        RecipeKey("dns", "array of strings", default: "[]", "Name servers, static only"),
        RecipeKey("sshd", "boolean", default: "true", "An SSH server with key logins only"),
        RecipeKey("ssh_port", "integer", default: "22", "The SSH server's port"),
    ])
    /// The network keys that apply only to a static address.
    static let staticNetworkKeys = ["address", "gateway", "dns"]

    /// `[[services]]`: the service's `name`, and the keys of a definition file
    /// (`ServiceDefinition.keys`, documented in docs/services.md).
    package static let services = RecipeTableSchema(path: "services", isArray: true, keys: [
        RecipeKey("name", "string", required: true, "The service's name, unique"),
    ])
    package static var serviceKeyNames: [String] { services.keyNames + ServiceDefinition.keys }

    package static let containers = RecipeTableSchema(path: "containers", isArray: true, keys: [
        RecipeKey("image", "string", required: true, "A registry reference or oci:DIR[:REF]"),
        RecipeKey("image_name", "string", "The image's name in the store"),
        RecipeKey("name", "string", "A container of this image started at boot, unique"),
        RecipeKey("command", "array of strings", "Its command; the image's by default"),
        RecipeKey("environment", "array of strings", "KEY=VALUE"),
        RecipeKey("volumes", "array of strings", "HOST:CONTAINER[:ro], absolute paths"),
        RecipeKey("network", "string", default: "\"none\"", "none or host"),
        RecipeKey("memory", "size", "Memory limit"),
        RecipeKey("cpus", "number", "CPU limit"),
        RecipeKey("pids_limit", "integer", "The most processes"),
        RecipeKey("read_only", "boolean", default: "false", "A read-only root filesystem"),
        RecipeKey("user", "string", "USER[:GROUP]; the image's by default"),
        RecipeKey("restart", "string", default: "\"no\"", "always, on-failure or on-failure:MAX: s6 restarts it (needs name and s6)"),
    ])

    /// Every table below the top level, in the order docs/recipe.md describes them.
    package static let tables: [RecipeTableSchema] = [
        kernel, packages, repositories, system, users, files, containers, snapshots, snapshotTree, disk, output, bootTest,
        network, services,
    ]
}
