import ArgumentParser
import CommandLineSupport
import QCOW2
import SystemSupport

/// `rast-build convert IN OUT`: raw to QCOW2, or QCOW2 back to raw.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a raw disk image to QCOW2, or a QCOW2 image back to raw.",
        discussion: """
            A raw image or block device becomes a QCOW2 (version 3) image: only allocated data is \
            read, all-zero clusters are left out, and compression runs on every core. A QCOW2 \
            image (recognised by its magic number) becomes a sparse raw image, or is written onto \
            an existing block device. The output appears under its name only when complete.
            """)

    @Argument(help: "The source: a raw image or block device, or a QCOW2 image.")
    var input: String

    @Argument(help: "The image to write (replaced if it exists), or a block device for QCOW2 to raw.")
    var output: String

    @Option(help: "Compression of QCOW2 data clusters: none (default), zlib (readable by every QEMU) or zstd (QEMU 5.1 and later).")
    var compression: String?

    @Option(help: "QCOW2 cluster size, a power of two from 512 to 2M (default 64K).")
    var clusterSize: String?

    @Option(help: "Compression level (zlib 1-9, default 5; zstd 1-19, default 4).")
    var level: Int?

    @Option(help: "Compression or decompression threads (default: one per core).")
    var threads: Int?

    @Flag(help: "Skip the fsync before the output is renamed into place (faster, not crash-safe).")
    var noSync = false

    @OptionGroup var global: GlobalOptions

    /// The compression asked for (none when not given); validate() rejects any other word.
    private func compressionChoice() throws -> QCOW2Compression {
        guard let compression else { return .none }
        guard let method = QCOW2Compression(rawValue: compression) else {
            throw ValidationError("--compression must be none, zlib or zstd, not '\(compression)'.")
        }
        return method
    }

    /// The cluster size asked for, in bytes (64 KiB when not given).
    private var clusterBytes: Int { Int(clusterSize.flatMap(ByteCount.parse) ?? 65536) }

    func validate() throws {
        let method = try compressionChoice()
        if let clusterSize {
            guard let size = ByteCount.parse(clusterSize), size >= 512, size <= 2 << 20, size & (size - 1) == 0 else {
                throw ValidationError("--cluster-size must be a power of two from 512 to 2M, not '\(clusterSize)'.")
            }
        }
        if let level {
            if method == .none {
                throw ValidationError("--level needs --compression zlib or zstd.")
            }
            guard method.levels.contains(level) else {
                throw ValidationError("--level for \(method) must be \(method.levels.lowerBound)...\(method.levels.upperBound), not \(level).")
            }
        }
        if let threads, threads < 1 {
            throw ValidationError("--threads must be at least 1.")
        }
    }

    func run() throws {
        guard Files.exists(input) else {
            throw UserError("\(input) does not exist.")
        }
        guard input != output else {
            throw UserError("the input and the output are the same file (\(input)).")
        }
        let progress = TerminalProgress()
        if QCOW2Reader.isQCOW2(path: input) {
            guard compression == nil, clusterSize == nil, level == nil else {
                throw UserError("\(input) is a QCOW2 image and becomes a raw image; --compression, --cluster-size and --level apply only to raw → QCOW2.")
            }
            let reader = try QCOW2Reader(path: input)
            let summary = try reader.convert(toRaw: output, progress: progress, durable: !noSync, threads: threads)
            print("\(output): raw disk of \(ByteCount.format(summary.virtualSize)) (\(ByteCount.format(summary.bytesWritten)) of data) in \(String(format: "%.1f", summary.seconds)) s")
        } else {
            let options = QCOW2Options(compression: try compressionChoice(), clusterSize: clusterBytes,
                                       level: level, threads: threads, durable: !noSync)
            let summary = try QCOW2Writer.convert(raw: input, to: output, options: options, progress: progress)
            print(summary)
        }
    }
}
