import Foundation
import SnapshotTree
import SystemSupport
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `rast` is killed with SIGKILL at random moments during clone, chroot commit, deploy and
/// del; after every kill, `rast check` (which first completes an interrupted change) must find
/// the tree consistent: every snapshot in the tree exists on disk, nothing unknown remains but
/// working copies, and the boot entries point at existing slots.
@Suite(.serialized) struct CrashTests {
    enum Operation: CaseIterable { case branch, clone, chrootCommit, deploy, delete }

    @Test func sigkillAtRandomMomentsNeverBreaksTheTree() throws {
        let fixture = try TreeFixture()
        defer { fixture.close() }
        let rast = RastCLI(root: fixture.layout.top)
        try rast("branch", "0")
        try rast("deploy", "1")
        var random = SplitMix64(environment: "RAST_CRASH_SEED", default: 20261122)

        func arguments(for operation: Operation) throws -> [String] {
            let ids = try SnapshotStore(layout: fixture.layout).state().snapshots.map(\.id)
            let changeable = ids.filter { $0 != 0 }
            let any = ids.randomElement(using: &random) ?? 0
            let some = changeable.randomElement(using: &random) ?? 1
            switch operation {
            case .branch: return ["branch", String(any)]
            case .clone: return ["clone", String(some)]
            case .chrootCommit: return ["run", String(some), "echo $$ > /etc/last-change"]
            case .deploy: return ["deploy", String(some)]
            case .delete: return ["del", String(changeable.count > 3 ? some : 4242), "--yes"]
            }
        }

        // How long each operation takes when left alone: kills are spread over that time.
        var durations: [Operation: Double] = [:]
        for operation in Operation.allCases {
            let watch = Stopwatch()
            for _ in 0..<2 { _ = try rast.run(try arguments(for: operation)) }
            durations[operation] = watch.elapsed / 2
        }

        var killed = 0
        var completed = 0
        var failures: [String] = []
        // Kill until at least `wanted` runs were interrupted mid-way (how many runs finish before
        // their kill depends on the machine's load), with a bound on the attempts.
        let wanted = Int(ProcessInfo.processInfo.environment["RAST_CRASH_KILLS"] ?? "") ?? 200
        for iteration in 0..<(wanted * 5) where killed < wanted {
            let operation = Operation.allCases.randomElement(using: &random) ?? .branch
            let args = try arguments(for: operation)
            let delay = Double.random(in: 0...1, using: &random) * (durations[operation] ?? 0.1) * 0.9
            var all = args
            all.insert(contentsOf: ["--root", fixture.layout.top], at: args.first == "run" ? 1 : all.count)
            var command = Command(RastCLI.binary, all)
            command.stopSignal = SIGKILL
            let result = try command.run(check: false, timeout: delay)
            if result.timedOut { killed += 1 } else { completed += 1 }

            let check = try rast("check")
            if check.status != 0 {
                failures.append("iteration \(iteration): after `rast \(args.joined(separator: " "))` killed at \(String(format: "%.3f", delay)) s:\n\(check.output)")
                break
            }
            if iteration % 25 == 24 { try rast("tmp") }
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        #expect(killed >= 200, "at least 200 runs were killed mid-way (\(killed) killed, \(completed) finished)")
        let state = try SnapshotStore(layout: fixture.layout).state()
        print("crash test: \(killed) runs killed with SIGKILL, \(completed) finished; `rast check` consistent after every one; \(state.snapshots.count) snapshots at the end")
        #expect(try rast("check").status == 0)
        #expect(try MountTable.read().mounts(under: fixture.layout.snapshots).isEmpty)
    }
}
