import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What became of one cluster of the source.
enum ClusterOutcome: Equatable {
    /// All zeros: not stored (reads back as zeros through an unallocated L2 entry).
    case zero
    /// Stored as it is (compression off, or the compressed form was not smaller).
    case raw
    /// Compressed into the slot's output buffer at `offset`, `length` bytes.
    case compressed(offset: Int, length: Int)
}

/// A run of consecutive source clusters read and compressed as one piece of work.
struct WorkUnit {
    /// Byte offset of the first cluster in the source.
    let offset: Int64
    let clusters: Int
}

/// One buffer set in the writer's ring (see `WorkerPool`): a unit's source bytes and their
/// compressed forms.
final class CompressionSlot {
    let input: AlignedBuffer
    let output: AlignedBuffer
    var outcomes: [ClusterOutcome] = []

    init(capacity: Int) {
        input = AlignedBuffer(count: capacity)
        output = AlignedBuffer(count: capacity)
    }

    /// Reads `unit` from `source` (a worker thread's part) and compresses each cluster that
    /// is not all zeros; `zeros` is one cluster of zeros.
    func fill(_ unit: WorkUnit, from source: ImageFile, sourceSize: Int64, clusterSize: Int,
              compressor: ClusterCompressor, zeros: AlignedBuffer) throws {
        outcomes.removeAll(keepingCapacity: true)
        let byteCount = unit.clusters * clusterSize
        let available = Int(max(0, min(Int64(byteCount), sourceSize - unit.offset)))
        let got = try source.read(into: input.base, count: available, at: unit.offset)
        if got < byteCount {
            // The last cluster of a source whose size is not a cluster multiple (or a file
            // that shrank while we read it) reads as zeros beyond the end.
            (input.base + got).initializeMemory(as: UInt8.self, repeating: 0, count: byteCount - got)
        }
        var outputPosition = 0
        for index in 0..<unit.clusters {
            let cluster = input.bytes(at: index * clusterSize, count: clusterSize)
            if memcmp(input.base + index * clusterSize, zeros.base, clusterSize) == 0 {
                outcomes.append(.zero)
                continue
            }
            // One byte less than a cluster: a compressed cluster must be smaller than a raw one.
            let target = output.mutableBytes(at: outputPosition, count: clusterSize - 1)
            if let length = try compressor.compress(cluster, into: target) {
                outcomes.append(.compressed(offset: outputPosition, length: length))
                outputPosition += length
            } else {
                outcomes.append(.raw)
            }
        }
    }
}
