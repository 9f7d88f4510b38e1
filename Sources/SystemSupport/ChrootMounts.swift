import Foundation

/// The API filesystems a program needs inside a root directory it is chrooted into: the
/// root bound onto itself (so it is a mount point, which pacman expects), /proc, /sys, /dev,
/// a fresh /run and /tmp, plus any extra binds (shared /var and /home). `release()` unmounts
/// in reverse order; rast-build and rast run in their own mount namespace, so even a killed
/// process leaves nothing mounted on the host.
package final class ChrootMounts {
    package let root: String
    private var mounted: [String] = []

    package init(root: String, binds: [(source: String, target: String)] = []) throws {
        self.root = root
        do {
            try Mounts.bind(root, on: root)
            mounted.append(root)
            try mount("proc", at: "/proc", type: "proc", options: ["nosuid", "noexec", "nodev"])
            try mount("sysfs", at: "/sys", type: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"])
            try Files.createDirectory(root + "/dev")
            try Mounts.bind("/dev", on: root + "/dev", recursive: true)
            mounted.append(root + "/dev")
            try mount("tmpfs", at: "/run", type: "tmpfs", options: ["nosuid", "nodev", "mode=0755"])
            try mount("tmpfs", at: "/tmp", type: "tmpfs", options: ["nosuid", "nodev", "mode=1777"])
            for bind in binds {
                let target = root + bind.target
                try Files.createDirectory(target)
                try Mounts.bind(bind.source, on: target)
                mounted.append(target)
            }
        } catch {
            release()
            throw error
        }
    }

    private func mount(_ source: String, at relative: String, type: String, options: [String]) throws {
        let target = root + relative
        try Files.createDirectory(target)
        try Mounts.mount(source, on: target, type: type, options: options)
        mounted.append(target)
    }

    /// Unmounts everything below the root, deepest first, and the root's self-bind.
    package func release() {
        guard !mounted.isEmpty else { return }
        try? Mounts.unmountAll(under: root)
        mounted.removeAll()
    }

    deinit { release() }
}
