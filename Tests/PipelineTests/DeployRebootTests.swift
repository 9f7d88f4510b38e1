import Foundation
import Pipeline
import SystemSupport
import TestSupport
import Testing

extension ImageBuilds {
    /// In the booted default image: `rast` branches the deployed snapshot and deploys the branch,
    /// the machine reboots, the second boot reports the branch as current; `rast rollback` and a
    /// third boot return to the first snapshot. Each boot is a QEMU run on the same image file.
    @Suite(.serialized) struct DeployRebootTests {
        @Test func branchDeployRebootRollbackReboot() throws {
            try ImageTestSupport.requirements()
            let scratch = try Scratch("rast-reboot")
            let out = scratch.appending("out")
            let recipe = try ImageTestSupport.recipe("minimal", output: out) { recipe in
                recipe.output.formats = [.raw]
            }
            _ = try ImageBuilder(recipe: recipe, options: ImageTestSupport.options(bootTest: false)).build()
            let image = out + "/minimal.raw"

            func boot(_ number: Int, expect current: Int, then script: String) throws -> BootTestResult {
                try ImageTestSupport.reboot(image, number, firmware: number == 2 ? .uefi : .bios, expect: current, then: script,
                                            logDirectory: scratch.path, label: "reboot test")
            }

            let first = try boot(1, expect: 1, then: """
                rast branch 1 "branch to deploy" > /tmp/branch
                new=$(sed -n 's/^created snapshot \\([0-9]*\\) from 1$/\\1/p' /tmp/branch)
                echo "RAST-REPORT branched $new"
                rast deploy "$new"
                rast status | sed 's/^/RAST-REPORT after-deploy /'
                """)
            let branched = first.otherReports.first { $0.hasPrefix("branched ") }.flatMap { Int($0.dropFirst("branched ".count)) }
            let branch = try #require(branched, "the guest reported the new branch: \(first.otherReports)")
            #expect(first.otherReports.contains("after-deploy next:    snapshot \(branch) (slot tmp0)"))

            let second = try boot(2, expect: branch, then: "rast rollback")
            #expect(second.reportedTree.contains { $0.contains("\(branch)* - branch to deploy") })

            let third = try boot(3, expect: 1, then: "true")
            #expect(third.reportedTree.contains { $0.contains("1* - base system") })
            try ImageTestSupport.expectNoLeftovers(under: out)
        }
    }
}
