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

/// One buffer set in the ring between the workers and the writer.
final class PipelineSlot {
    let input: AlignedBuffer
    let output: AlignedBuffer
    var outcomes: [ClusterOutcome] = []
    var error: (any Error)?
    /// The unit whose results the slot holds, -1 while none.
    var readyUnit = -1

    init(capacity: Int) {
        input = AlignedBuffer(count: capacity)
        output = AlignedBuffer(count: capacity)
    }
}

/// Reads and compresses work units on several threads while the caller consumes them in
/// order. Unit `u` lives in slot `u % slots.count`; a worker may start unit `u` only after
/// the caller has consumed unit `u - slots.count`, so at most `slots.count` units are in
/// flight and the output stays in source order.
///
/// `@unchecked Sendable`: the mutable state (the counters and each slot's contents) is handed
/// between threads under `condition`: a slot belongs to one worker from claiming its unit until
/// it sets `readyUnit`, then to the consumer until it advances `consumed`.
final class ClusterPipeline: @unchecked Sendable {
    let units: [WorkUnit]
    let clusterSize: Int
    private let slots: [PipelineSlot]
    private let condition = NSCondition()
    private var nextUnit = 0
    private var consumed = 0
    private var stopped = false
    private var runningWorkers = 0
    private let source: ImageFile
    private let sourceSize: Int64
    private let zeros: AlignedBuffer
    private let makeCompressor: @Sendable () throws -> ClusterCompressor

    init(source: ImageFile, sourceSize: Int64, units: [WorkUnit], clusterSize: Int, unitClusters: Int,
         slotCount: Int, makeCompressor: @escaping @Sendable () throws -> ClusterCompressor) {
        self.source = source
        self.sourceSize = sourceSize
        self.units = units
        self.clusterSize = clusterSize
        self.makeCompressor = makeCompressor
        slots = (0..<slotCount).map { _ in PipelineSlot(capacity: unitClusters * clusterSize) }
        zeros = AlignedBuffer(count: clusterSize, zeroed: true)
    }

    /// Starts `count` worker threads.
    func start(workers count: Int) {
        condition.lock()
        runningWorkers = count
        condition.unlock()
        for index in 0..<count {
            let thread = Thread { [self] in work() }
            thread.name = "qcow2-compress-\(index)"
            thread.start()
        }
    }

    /// Waits for unit `index` and returns its slot. Throws what the worker hit.
    func waitForUnit(_ index: Int) throws -> PipelineSlot {
        let slot = slots[index % slots.count]
        condition.lock()
        while slot.readyUnit != index && runningWorkers > 0 {
            condition.wait()
        }
        let ready = slot.readyUnit == index
        condition.unlock()
        guard ready else {
            throw QCOW2Error(.invalidArgument, "the compression threads ended before unit \(index) was done")
        }
        if let error = slot.error { throw error }
        return slot
    }

    /// Hands the slot of unit `index` back to the workers.
    func release(_ index: Int) {
        condition.lock()
        consumed = index + 1
        condition.broadcast()
        condition.unlock()
    }

    /// Stops the workers and waits until every one has left (their slots are then unused).
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while runningWorkers > 0 { condition.wait() }
        condition.unlock()
    }

    private func work() {
        var compressor: ClusterCompressor?
        var setupError: (any Error)?
        do { compressor = try makeCompressor() } catch { setupError = error }
        condition.lock()
        while true {
            while !stopped && nextUnit < units.count && nextUnit - consumed >= slots.count {
                condition.wait()
            }
            if stopped || nextUnit >= units.count { break }
            let index = nextUnit
            nextUnit += 1
            let slot = slots[index % slots.count]
            condition.unlock()
            slot.error = setupError
            slot.outcomes.removeAll(keepingCapacity: true)
            if setupError == nil, let compressor {
                do {
                    try process(units[index], into: slot, compressor: compressor)
                } catch {
                    slot.error = error
                }
            }
            condition.lock()
            slot.readyUnit = index
            condition.broadcast()
        }
        runningWorkers -= 1
        condition.broadcast()
        condition.unlock()
    }

    private func process(_ unit: WorkUnit, into slot: PipelineSlot, compressor: ClusterCompressor) throws {
        let byteCount = unit.clusters * clusterSize
        let available = Int(max(0, min(Int64(byteCount), sourceSize - unit.offset)))
        let got = try source.read(into: slot.input.base, count: available, at: unit.offset)
        if got < byteCount {
            // The last cluster of a source whose size is not a cluster multiple (or a file
            // that shrank while we read it) reads as zeros beyond the end.
            (slot.input.base + got).initializeMemory(as: UInt8.self, repeating: 0, count: byteCount - got)
        }
        var outputPosition = 0
        for index in 0..<unit.clusters {
            let cluster = slot.input.bytes(at: index * clusterSize, count: clusterSize)
            if memcmp(slot.input.base + index * clusterSize, zeros.base, clusterSize) == 0 {
                slot.outcomes.append(.zero)
                continue
            }
            // One byte less than a cluster: a compressed cluster must be smaller than a raw one.
            let target = slot.output.mutableBytes(at: outputPosition, count: clusterSize - 1)
            if let length = try compressor.compress(cluster, into: target) {
                slot.outcomes.append(.compressed(offset: outputPosition, length: length))
                outputPosition += length
            } else {
                slot.outcomes.append(.raw)
            }
        }
    }
}
