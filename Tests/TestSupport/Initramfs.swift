import Foundation
import SystemSupport

/// A tiny initramfs for booting a kernel directly in QEMU: static busybox and an /init script.
package enum Initramfs {
    /// Writes `directory/initramfs.cpio.gz` whose /init runs `script` (with busybox applets in PATH).
    package static func make(in directory: String, script: String) throws -> String {
        try Require.programs("cpio", "gzip", "busybox")
        let root = directory + "/initramfs-root"
        for dir in ["bin", "proc", "sys", "dev"] { try Files.createDirectory(root + "/" + dir) }
        try Command("cp", ["/bin/busybox", root + "/bin/busybox"]).run()
        try Files.write(root + "/init", string: """
            #!/bin/busybox sh
            /bin/busybox --install -s /bin
            export PATH=/bin
            mount -t proc proc /proc
            mount -t sysfs sysfs /sys
            \(script)
            poweroff -f

            """, mode: 0o755)
        let output = directory + "/initramfs.cpio.gz"
        try Command("sh", ["-c", "find . | cpio -o -H newc --quiet | gzip -1 > '\(output)'"], workingDirectory: root).run()
        return output
    }
}
