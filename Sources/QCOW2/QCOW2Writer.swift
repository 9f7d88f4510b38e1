import Foundation
import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

/// How `QCOW2Writer` writes an image.
package struct QCOW2Options: Sendable, Equatable {
    /// How data clusters are compressed.
    package var compression: QCOW2Compression
    /// Cluster size in bytes: a power of two from 512 B to 2 MiB.
    package var clusterSize: Int
    /// Compression level; nil takes the compression's `defaultLevel`.
    package var level: Int?
    /// Compression threads; nil uses every online core.
    package var threads: Int?
    /// fsync the image before renaming it into place (and the directory after).
    package var durable: Bool

    package init(compression: QCOW2Compression = .none, clusterSize: Int = 64 << 10, level: Int? = nil,
                threads: Int? = nil, durable: Bool = true) {
        self.compression = compression
        self.clusterSize = clusterSize
        self.level = level
        self.threads = threads
        self.durable = durable
    }

    /// The level in effect.
    package var effectiveLevel: Int { level ?? compression.defaultLevel }

    var clusterBits: Int { clusterSize.trailingZeroBitCount }

    func validate() throws {
        guard clusterSize > 0, clusterSize & (clusterSize - 1) == 0,
              (QCOW2Format.minClusterBits...QCOW2Format.maxClusterBits).contains(clusterBits) else {
            throw QCOW2Error(.invalidArgument, field: "cluster_size",
                             "the cluster size must be a power of two from 512 bytes to 2 MiB, not \(clusterSize)")
        }
        if let level, compression != .none, !compression.levels.contains(level) {
            throw QCOW2Error(.invalidArgument, "\(compression) compression levels are \(compression.levels.lowerBound)...\(compression.levels.upperBound), not \(level)")
        }
        if let threads, threads < 1 {
            throw QCOW2Error(.invalidArgument, "at least one compression thread is needed, not \(threads)")
        }
    }
}

/// What a conversion produced.
package struct QCOW2Summary: Sendable, Equatable, CustomStringConvertible {
    /// The image written.
    package var path: String
    /// Size of the virtual disk (the source's size rounded up to 512 bytes).
    package var virtualSize: Int64
    /// Size of the image file.
    package var fileSize: Int64
    /// Cluster size in bytes.
    package var clusterSize: Int
    /// How data clusters were compressed.
    package var compression: QCOW2Compression
    /// Bytes read from the source's data extents (holes are not read).
    package var bytesRead: Int64
    /// Clusters stored compressed.
    package var compressedClusters: Int
    /// Clusters stored as they are (compression off, or not worth it).
    package var uncompressedClusters: Int
    /// Clusters of the source that held only zeros and were left unallocated.
    package var zeroClusters: Int
    /// Wall-clock duration.
    package var seconds: Double

    package var description: String {
        "\(path): \(ByteCount.format(fileSize)) for a \(ByteCount.format(virtualSize)) disk"
            + " (\(compressedClusters) compressed, \(uncompressedClusters) uncompressed, \(zeroClusters) zero clusters skipped)"
            + String(format: " in %.1f s", seconds)
    }
}

/// Writes QCOW2 version 3 images from raw disk images or block devices.
///
/// One pass over the source: only its data extents (SEEK_DATA/SEEK_HOLE) are read, all-zero
/// clusters are left out, worker threads compress while this thread lays the clusters out in
/// source order right after the header cluster; L2 tables, the L1 table and the refcounts
/// follow the data, and the header is written last. The image appears under its final name
/// only when complete.
package enum QCOW2Writer {
    /// Size of one piece of work: big enough for large sequential reads and writes, small
    /// enough that every thread has several in flight.
    static let unitBytes = 1 << 20

    /// Converts the raw image or block device `raw` into the QCOW2 image `destination`.
    @discardableResult
    /// `displayPath` names the output in progress lines when `destination` is a temporary
    /// place it is renamed from later.
    package static func convert(raw source: String, to destination: String, options: QCOW2Options = QCOW2Options(),
                               progress: any ProgressReporter = SilentProgress(), displayPath: String? = nil) throws -> QCOW2Summary {
        do {
            return try write(source: source, destination: destination, displayPath: displayPath ?? destination,
                             options: options, progress: progress)
        } catch let error as QCOW2Error {
            throw error.with(path: destination)
        }
    }

    private static func write(source sourcePath: String, destination: String, displayPath: String, options: QCOW2Options,
                              progress: any ProgressReporter) throws -> QCOW2Summary {
        try options.validate()
        if let type = fileType(destination), type != S_IFREG {
            // Renaming over a device node or a directory would be a disaster, not a conversion.
            throw QCOW2Error(.invalidArgument, "exists and is not a regular file; a QCOW2 image is written to a file")
        }
        let stopwatch = Stopwatch()
        let clusterSize = options.clusterSize
        let cluster = Int64(clusterSize)
        let source = try ImageFile(path: sourcePath, mode: .readOnly)
        let sourceSize = try source.size()
        // QEMU sizes disks in 512-byte sectors; the tail of a partial sector reads as zeros.
        let virtualSize = (sourceSize + 511) / 512 * 512
        var layout = try QCOW2Layout(virtualSize: virtualSize, clusterBits: options.clusterBits)
        _ = posix_fadvise(source.descriptor.rawValue, 0, 0, POSIX_FADV_SEQUENTIAL)

        // Work units: the source's data extents, widened to whole clusters.
        let unitClusters = max(1, unitBytes / clusterSize)
        var units: [WorkUnit] = []
        var dataBytes: Int64 = 0
        RastLog.logger.debug("qcow2: \(sourcePath): \(sourceSize) bytes; writing \(destination)")
        var previousEnd: Int64 = 0
        for extent in try source.dataExtents(size: sourceSize) {
            var start = max(extent.lowerBound / cluster * cluster, previousEnd)
            let end = (extent.upperBound + cluster - 1) / cluster * cluster
            guard start < end else { continue }
            previousEnd = end
            dataBytes += end - start
            while start < end {
                let clusters = Int(min(Int64(unitClusters), (end - start) / cluster))
                units.append(WorkUnit(offset: start, clusters: clusters))
                start += Int64(clusters) * cluster
            }
        }

        let output = try TemporaryOutput(finalPath: destination)
        // Compressed output is written once and read by nobody soon: O_DIRECT keeps it out of
        // the page cache, which saves the copy and page allocation while the workers compress.
        // Uncompressed output is bound by write speed, where the page cache is faster.
        let writer = CoalescingWriter(handle: output.handle, maximumGap: clusterSize,
                                      directPath: options.compression == .none ? nil : output.temporaryPath)
        let threads = options.threads ?? ProcessInfo.processInfo.activeProcessorCount
        let compression = options.compression
        let level = options.effectiveLevel
        _ = try ClusterCompressor(compression: compression, level: level)  // fail early on bad settings
        let pipeline = WorkerPool(slots: (0..<max(4, threads * 4)).map { _ in CompressionSlot(capacity: unitClusters * clusterSize) },
                                  work: "compression")
        pipeline.submit(units.count)

        let task = "qcow2 (\(compression)\(compression == .none ? "" : " level \(level)"), \(ByteCount.format(cluster)) clusters)"
        progress.begin("Writing \(displayPath): \(task)")
        var summary = QCOW2Summary(path: destination, virtualSize: virtualSize, fileSize: 0, clusterSize: clusterSize,
                                   compression: compression, bytesRead: 0, compressedClusters: 0,
                                   uncompressedClusters: 0, zeroClusters: 0, seconds: 0)
        pipeline.start(workers: threads, threadName: "qcow2-compress") { [units, clusterSize] in
            let compressor = try ClusterCompressor(compression: compression, level: level)
            let zeros = AlignedBuffer(count: clusterSize, zeroed: true)
            return { index, slot in
                try slot.fill(units[index], from: source, sourceSize: sourceSize, clusterSize: clusterSize,
                              compressor: compressor, zeros: zeros)
            }
        }
        do {
            defer { pipeline.stop() }
            var done: Int64 = 0
            for (index, unit) in units.enumerated() {
                try checkCancelled()
                let slot = try pipeline.waitForUnit(index)
                // Consecutive raw clusters land in consecutive host clusters: write them as one run.
                var run: (source: Int, host: Int64, count: Int)?
                func flushRun() throws {
                    if let pending = run {
                        try writer.write(slot.input.base + pending.source * clusterSize,
                                         count: pending.count * clusterSize, at: pending.host)
                        run = nil
                    }
                }
                let firstCluster = unit.offset / cluster
                for (position, outcome) in slot.outcomes.enumerated() {
                    let virtualCluster = firstCluster + Int64(position)
                    switch outcome {
                    case .zero:
                        summary.zeroClusters += 1
                    case .raw:
                        summary.uncompressedClusters += 1
                        let host = layout.placeRaw(virtualCluster: virtualCluster)
                        if let pending = run, pending.host + Int64(pending.count) * cluster == host,
                           pending.source + pending.count == position {
                            run = (pending.source, pending.host, pending.count + 1)
                        } else {
                            try flushRun()
                            run = (position, host, 1)
                        }
                    case .compressed(let offset, let length):
                        summary.compressedClusters += 1
                        try flushRun()
                        let host = try layout.placeCompressed(virtualCluster: virtualCluster, length: length)
                        try writer.write(slot.output.base + offset, count: length, at: host)
                    }
                }
                try flushRun()
                pipeline.release(index)
                done += Int64(unit.clusters) * cluster
                progress.update(ProgressUpdate(task: "qcow2", completed: done, total: dataBytes, unit: .bytes))
            }
            summary.bytesRead = done
        }

        let metadata = try layout.finish(compression: compression)
        for blob in metadata.blobs {
            try writer.write(blob.bytes, at: blob.offset)
        }
        try writer.flush()
        try output.handle.write(metadata.header.encoded(clusterSize: clusterSize), at: 0)
        try output.handle.truncate(to: metadata.fileSize)
        try output.commit(durable: options.durable)

        summary.fileSize = metadata.fileSize
        summary.seconds = stopwatch.elapsed
        RastLog.logger.debug("qcow2: \(summary) (\(units.count) units on \(threads) threads, level \(level))")
        progress.end("Writing \(displayPath)", summary: "\(ByteCount.format(summary.fileSize)) in \(stopwatch.formatted)")
        return summary
    }
}

extension ImageFile {
    func write(_ bytes: [UInt8], at offset: Int64) throws {
        try bytes.withUnsafeBytes { raw in
            if let base = raw.baseAddress { try write(base, count: raw.count, at: offset) }
        }
    }
}
