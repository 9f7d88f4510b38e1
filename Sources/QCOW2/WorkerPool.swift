import Foundation

/// Worker threads that process numbered units of work in a ring of slots while the caller
/// consumes the results in order: the writer's read-and-compress and the reader's
/// read-and-decompress.
///
/// Unit `u` lives in slot `u % slots.count`. The caller submits units (all at once when they
/// are known up front, or one at a time after filling the next slot), workers claim them in
/// order, and the caller waits for each in order and releases it. A worker claims unit `u`
/// only after the caller released unit `u - slots.count`, so at most `slots.count` units are
/// in flight and a slot is never reused while the caller reads it.
///
/// `@unchecked Sendable`: the counters change only under `condition`, and a slot's contents
/// change hands under it: the caller owns a slot until it submits the unit, one worker from
/// claiming the unit until it marks it done, then the caller again until it releases it.
final class WorkerPool<Slot: AnyObject>: @unchecked Sendable {
    let slots: [Slot]
    /// What the workers do, for the error when they end early ("compression").
    private let work: String
    private let condition = NSCondition()
    private var submitted = 0
    private var claimed = 0
    private var consumed = 0
    private var stopped = false
    private var runningWorkers = 0
    /// Per slot: the unit whose results it holds (-1 while none) and what processing it threw.
    private var doneUnit: [Int]
    private var failure: [(any Error)?]

    init(slots: [Slot], work: String) {
        precondition(!slots.isEmpty, "a worker pool needs at least one slot")
        self.slots = slots
        self.work = work
        doneUnit = Array(repeating: -1, count: slots.count)
        failure = Array(repeating: nil, count: slots.count)
    }

    var submittedCount: Int { condition.withLock { submitted } }
    var consumedCount: Int { condition.withLock { consumed } }

    /// Starts `count` threads named `threadName-N`. Each calls `makeWorker` once, on its own
    /// thread, for what it keeps between units (a compressor, a scratch buffer); the function
    /// that returns processes one unit in its slot. When `makeWorker` throws, every unit that
    /// thread claims fails with that error.
    func start(workers count: Int, threadName: String,
               makeWorker: @escaping @Sendable () throws -> (_ unit: Int, _ slot: Slot) throws -> Void) {
        condition.withLock { runningWorkers += count }
        for index in 0..<count {
            let thread = Thread { [self] in run(makeWorker) }
            thread.name = "\(threadName)-\(index)"
            thread.start()
        }
    }

    /// The slot of the next unit to submit, for the caller to fill. It is free once the caller
    /// has released unit `submittedCount - slots.count`.
    func slotForNextUnit() -> Slot {
        condition.withLock { slots[submitted % slots.count] }
    }

    /// Hands the next `count` units to the workers.
    func submit(_ count: Int = 1) {
        condition.withLock {
            submitted += count
            condition.broadcast()
        }
    }

    /// Waits for unit `index` and returns its slot. Throws what its worker hit.
    func waitForUnit(_ index: Int) throws -> Slot {
        let position = index % slots.count
        condition.lock()
        while doneUnit[position] != index && runningWorkers > 0 {
            condition.wait()
        }
        let done = doneUnit[position] == index
        let error = failure[position]
        condition.unlock()
        guard done else {
            throw QCOW2Error(.invalidArgument, "the \(work) threads ended before unit \(index) was done")
        }
        if let error { throw error }
        return slots[position]
    }

    /// Hands the slot of unit `index` back to the workers.
    func release(_ index: Int) {
        condition.withLock {
            consumed = index + 1
            condition.broadcast()
        }
    }

    /// Stops the workers and waits until every one has left (their slots are then unused).
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while runningWorkers > 0 { condition.wait() }
        condition.unlock()
    }

    private func run(_ makeWorker: () throws -> (Int, Slot) throws -> Void) {
        let process: ((Int, Slot) throws -> Void)?
        let setupError: (any Error)?
        do {
            process = try makeWorker()
            setupError = nil
        } catch {
            process = nil
            setupError = error
        }
        condition.lock()
        while true {
            while !stopped && (claimed >= submitted || claimed - consumed >= slots.count) {
                condition.wait()
            }
            if stopped { break }
            let index = claimed
            claimed += 1
            condition.unlock()
            let position = index % slots.count
            var error = setupError
            if let process {
                do { try process(index, slots[position]) } catch let thrown { error = thrown }
            }
            condition.lock()
            failure[position] = error
            doneUnit[position] = index
            condition.broadcast()
        }
        runningWorkers -= 1
        condition.broadcast()
        condition.unlock()
    }
}
