import Foundation

/// One piece of a read unit, in virtual disk order.
struct ReadItem {
    enum Source {
        /// Uncompressed clusters, contiguous in the file.
        case data(hostOffset: UInt64)
        /// One compressed cluster.
        case compressed(hostOffset: UInt64, maximumSize: Int)
        /// Zeros (only written when the output is a device).
        case zeros
    }
    let source: Source
    let virtualOffset: Int64
    /// Bytes of the virtual disk this item covers.
    let length: Int
    /// Where its bytes go in the slot buffer (unused for zeros).
    let bufferOffset: Int
}

/// A buffer set in the ring between the caller and the workers.
final class ReadSlot {
    let buffer: AlignedBuffer
    var items: [ReadItem] = []
    var error: (any Error)?
    /// The unit whose data the slot holds, -1 while none.
    var readyUnit = -1

    init(capacity: Int) { buffer = AlignedBuffer(count: capacity) }
}

/// Reads and decompresses units of clusters on worker threads while the caller, which both
/// submits the units (it walks the L1/L2 tables) and consumes them, writes them out in order.
///
/// `@unchecked Sendable`: the counters and each slot's contents change hands under
/// `condition`: the caller fills a slot and submits it; one worker owns it from claiming it
/// until it sets `readyUnit`; then the caller owns it again until it releases it.
final class DecompressionPipeline: @unchecked Sendable {
    let slotCount: Int
    let slotCapacity: Int
    private let slots: [ReadSlot]
    private let condition = NSCondition()
    private var submitted = 0
    private var claimed = 0
    private var consumed = 0
    private var stopped = false
    private var runningWorkers = 0
    private let read: @Sendable (UnsafeMutableRawPointer, Int, Int64) throws -> Int
    private let fileSize: Int64
    private let clusterSize: Int
    private let clusterBits: Int
    private let compression: QCOW2Compression

    /// `read(buffer, count, offset)` reads image bytes; it is called from several threads.
    init(slotCount: Int, slotCapacity: Int, fileSize: Int64, clusterSize: Int, clusterBits: Int,
         compression: QCOW2Compression, read: @escaping @Sendable (UnsafeMutableRawPointer, Int, Int64) throws -> Int) {
        self.slotCount = slotCount
        self.slotCapacity = slotCapacity
        self.fileSize = fileSize
        self.clusterSize = clusterSize
        self.clusterBits = clusterBits
        self.compression = compression
        self.read = read
        slots = (0..<slotCount).map { _ in ReadSlot(capacity: slotCapacity) }
    }

    var submittedCount: Int { condition.withLock { submitted } }
    var consumedCount: Int { condition.withLock { consumed } }

    func start(workers count: Int) {
        condition.withLock { runningWorkers = count }
        for index in 0..<count {
            let thread = Thread { [self] in work() }
            thread.name = "qcow2-decompress-\(index)"
            thread.start()
        }
    }

    /// The slot for the next unit; the caller must have consumed enough units that it is free.
    func slotForNextUnit() -> ReadSlot {
        condition.withLock { slots[submitted % slotCount] }
    }

    /// Hands the next unit (its slot filled with items) to the workers.
    func submit() {
        condition.withLock {
            submitted += 1
            condition.broadcast()
        }
    }

    /// Waits for unit `index`; throws what the worker hit.
    func waitForUnit(_ index: Int) throws -> ReadSlot {
        let slot = slots[index % slotCount]
        condition.lock()
        while slot.readyUnit != index && runningWorkers > 0 {
            condition.wait()
        }
        let ready = slot.readyUnit == index
        condition.unlock()
        guard ready else {
            throw QCOW2Error(.invalidArgument, "the decompression threads ended before unit \(index) was done")
        }
        if let error = slot.error { throw error }
        return slot
    }

    func release(_ index: Int) {
        condition.withLock {
            consumed = index + 1
            condition.broadcast()
        }
    }

    /// Stops the workers and waits until every one has left.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while runningWorkers > 0 { condition.wait() }
        condition.unlock()
    }

    private func work() {
        var decompressor: ClusterDecompressor?
        var setupError: (any Error)?
        do {
            decompressor = try ClusterDecompressor(compression: compression, clusterBits: clusterBits)
        } catch {
            setupError = error
        }
        let compressed = AlignedBuffer(count: (1 << (clusterBits - 8)) * QCOW2Format.sectorSize)
        condition.lock()
        while true {
            while !stopped && claimed >= submitted {
                condition.wait()
            }
            if stopped { break }
            let index = claimed
            claimed += 1
            let slot = slots[index % slotCount]
            condition.unlock()
            slot.error = setupError
            if setupError == nil, let decompressor {
                do {
                    try fill(slot, decompressor: decompressor, compressed: compressed)
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

    private func fill(_ slot: ReadSlot, decompressor: ClusterDecompressor, compressed: AlignedBuffer) throws {
        for item in slot.items {
            let target = slot.buffer.base + item.bufferOffset
            switch item.source {
            case .zeros:
                break
            case .data(let host):
                let got = try read(target, item.length, Int64(host))
                // QEMU reads past the end of the file as zeros too.
                if got < item.length { (target + got).initializeMemory(as: UInt8.self, repeating: 0, count: item.length - got) }
            case .compressed(let host, let maximumSize):
                let available = min(maximumSize, Int(fileSize - Int64(host)), compressed.count)
                let got = try read(compressed.base, available, Int64(host))
                if let problem = decompressor.decompress(compressed.bytes(at: 0, count: got),
                                                         into: slot.buffer.mutableBytes(at: item.bufferOffset, count: clusterSize)) {
                    throw QCOW2Error(.corruptData, offset: host,
                                     "the \(compression) cluster at \(hex(host)) (virtual offset \(hex(item.virtualOffset))) is corrupt: \(problem)")
                }
            }
        }
    }
}
