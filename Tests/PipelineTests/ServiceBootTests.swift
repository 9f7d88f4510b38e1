import Foundation
import Pipeline
import Recipe
import Services
import SystemSupport
import TestSupport
import Testing
import VirtualMachine

extension ImageBuilds {
    /// The default image as a reachable, supervised system, in three boots of one image file:
    ///
    /// 1. An SSH login as admin from this machine (QEMU user networking, restrict=on, port 22
    ///    forwarded from 127.0.0.1) with a key made here and put in the recipe: `rast tree` and
    ///    `rast service list` over SSH; password and root logins refused. In the guest: beta
    ///    started only once alpha was ready; kill -9 of alpha's process restarts it within its
    ///    backoff; a service that always fails shows `failed`, its restarts and its last log
    ///    lines; `rast service disable beta` makes and deploys snapshot 3.
    /// 2. Snapshot 3 boots without beta (disabled, not running), which snapshot 1 still has;
    ///    `rast rollback`.
    /// 3. Snapshot 1 boots with beta running again.
    @Suite(.serialized) struct ServiceBootTests {
        @Test func loginServicesDisableRebootRollback() throws {
            // The default image with a key made here and the services alpha, beta and failing
            // (SSHTestImage, shared with VirtualMachineTests); this test changes a copy.
            let shared = try SSHTestImage.shared()
            let scratch = try Scratch("rast-services-boot")
            let image = try shared.copy(to: scratch.appending("out"))
            let key = shared.key

            func boot(_ number: Int, current: Int, login: Bool, checks: String) throws -> BootTestResult {
                var test = BootTest(image: image, format: "raw", firmware: .bios, timeout: 400, memory: "512M",
                                    expectation: BootExpectation(current: current, tree: nil), extraChecks: checks,
                                    persistent: true, finish: "reboot -f", consoleLog: scratch.appending("boot\(number).log"))
                if login { test.login = LoginCheck(user: "admin", identity: key, commands: ["rast tree", "rast service list"]) }
                let result = try test.run(progress: TerminalProgress(interactive: false))
                print("services boot \(number): \(result.outcome) in \(String(format: "%.1f", result.seconds)) s (\(result.accelerator))")
                for line in result.otherReports { print("services boot \(number): \(line)") }
                if !result.passed { print(try Files.readString(result.consoleLog).split(separator: "\n").suffix(80).joined(separator: "\n")) }
                return result
            }
            func reports(_ result: BootTestResult, _ tag: String) -> [String] {
                result.otherReports.filter { $0.hasPrefix(tag + " ") }.map { String($0.dropFirst(tag.count + 1)) }
            }

            // Boot 1.
            let first = try boot(1, current: 1, login: true, checks: """
                report() { tag=$1; shift; "$@" > /tmp/report 2>&1; status=$?; while IFS= read -r line; do echo "RAST-REPORT $tag $line"; done < /tmp/report; return $status; }
                state() { rast service list | awk -v name="$1" '$1 == name { print $2 }'; }
                n=0
                until [ "$(state alpha)" = running ] && [ "$(state beta)" = running ] && [ "$(state failing)" = failed ]; do
                    n=$((n + 1)); [ "$n" -lt 300 ] || { rast service list; exit 1; }; sleep 0.2
                done
                report list rast service list
                report beta-log cat /var/log/beta/current
                report alpha-log cat /var/log/alpha/current
                pid() { rast service status "$1" --json | sed -n 's/^ *"pid" : \\([0-9]*\\),*$/\\1/p'; }
                old=$(pid alpha)
                start=$(cut -d' ' -f1 /proc/uptime)
                kill -9 "$old"
                # Polled with s6-svstat itself: rast's own start-up under TCG would blur the time.
                new=-1
                n=0
                until [ "$new" != -1 ] && [ "$new" != "$old" ]; do
                    n=$((n + 1)); [ "$n" -lt 500 ] || exit 1; sleep 0.05; new=$(s6-svstat -o pid /run/rast/service/alpha)
                done
                [ "$(pid alpha)" = "$new" ]
                end=$(cut -d' ' -f1 /proc/uptime)
                echo "RAST-REPORT alpha-restart $old $new $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')"
                report alpha-status rast service status alpha
                report alpha-log-after cat /var/log/alpha/current
                n=0
                until rast service status failing --json | grep -q '"restarts" : [3-9]'; do
                    n=$((n + 1)); [ "$n" -lt 300 ] || exit 1; sleep 0.2
                done
                until [ "$(state failing)" = failed ]; do sleep 0.1; done
                report failing-status rast service status failing
                report disable rast service disable beta
                sync
                """)
            #expect(first.passed, "\(first.outcome)")
            let login = try #require(first.login)
            #expect(login.secondsToLogin != nil)
            #expect(login.commands.map(\.command) == ["rast tree", "rast service list"])
            #expect(login.commands.first?.output.contains("1* - base system") == true, "\(login.commands)")
            let listed = login.commands.last?.output ?? ""
            for (name, state) in [("alpha", "running"), ("beta", "running"), ("failing", "failed"), ("network", "running"), ("sshd", "running")] {
                #expect(listed.split(separator: "\n").contains { $0.hasPrefix(name) && $0.contains(" \(state) ") }, "\(name) \(state) in:\n\(listed)")
            }
            #expect(login.offeredAuthentications == ["publickey"])
            #expect(login.passwordLoginRefused)
            #expect(login.rootLoginRefused)
            print("services boot 1: SSH login \(String(format: "%.1f", login.secondsToLogin ?? 0)) s after QEMU started")

            #expect(reports(first, "beta-log").contains { $0.hasSuffix("beta: alpha was listening when beta started") }, "\(reports(first, "beta-log"))")
            #expect(reports(first, "beta-log").contains { $0.hasSuffix("rast: beta waits for alpha to be ready") })
            let restart = try #require(reports(first, "alpha-restart").first).split(separator: " ")
            #expect(restart.count == 3 && restart[0] != restart[1])
            // The backoff (1 s) is kept; the upper bound allows for TCG on a busy machine (the
            // tight bound is SupervisionTests' job, on this machine's own s6).
            let seconds = Double(restart.last ?? "") ?? 99
            #expect(seconds >= 0.95 && seconds < 15, "alpha came back after \(seconds) s; its backoff is 1 s")
            #expect(reports(first, "alpha-log").isEmpty == false)
            #expect(reports(first, "alpha-status").contains { $0.hasSuffix("rast: alpha was killed by signal 9; restart 1 in 1.000 s") }
                    || reports(first, "alpha-log-after").contains { $0.hasSuffix("rast: alpha was killed by signal 9; restart 1 in 1.000 s") },
                    "\(reports(first, "alpha-log-after"))")
            #expect(reports(first, "alpha-status").contains { $0.contains("restarts:") && $0.contains("1 since boot") }, "\(reports(first, "alpha-status"))")
            #expect(reports(first, "alpha-status").contains { $0.contains("last exit:") && $0.contains("killed by signal 9 (SIGKILL)") })
            let failing = reports(first, "failing-status")
            #expect(failing.contains { $0.contains("state:") && $0.contains("failed") }, "\(failing)")
            #expect(failing.contains { $0.contains("last exit:") && $0.contains("exited with status 3") }, "\(failing)")
            #expect(failing.contains { $0.contains("restarts:") && !$0.contains(" 0 since boot") && !$0.contains(" 1 since boot") }, "\(failing)")
            #expect(failing.contains("  last log lines:"), "\(failing)")
            #expect(failing.contains { $0.hasSuffix("failing: cannot open /nonexistent/config") }, "\(failing)")
            #expect(reports(first, "disable").contains { $0.contains("snapshot 3 (from 1): rast service disable beta") }, "\(reports(first, "disable"))")
            guard first.passed else { return }

            // Boot 2: snapshot 3, beta disabled and not running; snapshot 1 still has it.
            let second = try boot(2, current: 3, login: false, checks: """
                n=0
                until rast service list | grep -q '^alpha *running'; do n=$((n + 1)); [ "$n" -lt 300 ] || exit 1; sleep 0.2; done
                rast service list | sed 's/^/RAST-REPORT list /'
                rast service list --snapshot 1 | sed 's/^/RAST-REPORT list-1 /'
                if ps | grep -v grep | grep -q 'sleep 100000'; then echo "RAST-REPORT beta is running"; fi
                rast rollback
                """)
            #expect(second.passed, "\(second.outcome)")
            #expect(reports(second, "list").contains { $0.hasPrefix("beta") && $0.contains(" disabled ") }, "\(reports(second, "list"))")
            #expect(reports(second, "list-1").contains { $0.hasPrefix("beta") && $0.contains(" yes ") }, "\(reports(second, "list-1"))")
            #expect(!second.otherReports.contains("beta is running"))
            #expect(second.reportedTree.contains { $0.contains("3* - rast service disable beta") }, "\(second.reportedTree)")
            guard second.passed else { return }

            // Boot 3: the rollback brings beta back.
            let third = try boot(3, current: 1, login: false, checks: """
                n=0
                until rast service list | grep -q '^beta *running'; do n=$((n + 1)); [ "$n" -lt 300 ] || { rast service list; exit 1; }; sleep 0.2; done
                rast service list | sed 's/^/RAST-REPORT list /'
                """)
            #expect(third.passed, "\(third.outcome)")
            #expect(reports(third, "list").contains { $0.hasPrefix("beta") && $0.contains(" running ") }, "\(reports(third, "list"))")
            try ImageTestSupport.expectNoLeftovers(under: scratch.path)
        }
    }
}
