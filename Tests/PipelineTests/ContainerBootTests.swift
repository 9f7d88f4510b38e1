import Foundation
import Pipeline
import Recipe
import SystemSupport
import TestSupport
import Testing

extension ImageBuilds {
    /// `rast container` in a booted image of recipes/container.toml (crun cannot run containers
    /// on the build hosts): a busybox image, built on the host with umoci as an OCI layout and
    /// handed to the guest on a second disk (a tar), is pulled and run in every way the
    /// checks ask for; a reboot then shows what `ps` says about containers that were running.
    @Suite(.serialized) struct ContainerBootTests {
        static let boot1 = #"""
            r() { echo "RAST-REPORT $*"; }
            wait_log() { i=0; while ! rast container logs "$1" 2>/dev/null | grep -q "$2"; do i=$((i+1)); [ $i -lt 60 ] || { r timeout "$1"; return 0; }; sleep 1; done; }
            mkdir -p /tmp/images
            tar -xf /dev/vdb -C /tmp/images
            rast container info | sed 's/^/RAST-REPORT info /'
            rast container pull oci:/tmp/images/layout:bb --name bb
            r images "$(rast container images -q | wc -l)"
            start=$(date +%s)
            rast container run --rm bb true
            r true-seconds $(( $(date +%s) - start ))
            r boot-web "$(rast container ps | grep -c ' web$')"
            wait_log web boot-started
            r boot-log "$(rast container logs web)"

            r pid1 "$(rast container run --rm --name c1 bb sh -c 'echo pid=$$ host=$(hostname)')"
            r net-none "$(rast container run --rm bb ls /sys/class/net | tr '\n' ' ')"
            host_net=$(readlink /proc/self/ns/net)
            r net-host "$(rast container run --rm --network host bb readlink /proc/self/ns/net | grep -cxF "$host_net")"
            r net-none-ns "$(rast container run --rm bb readlink /proc/self/ns/net | grep -cxF "$host_net")"
            r env-workdir "$(rast container run --rm -e GREETING=hello -w /tmp bb sh -c 'echo $GREETING $(pwd)')"
            r user "$(rast container run --rm --user nobody bb id -u)"
            r userns "$(rast container run --rm --userns bb sh -c 'echo uid=$(id -u) map=$(tr -s " " < /proc/self/uid_map)')"
            r cpus "$(rast container run --rm --cpus 0.5 bb cat /sys/fs/cgroup/cpu.max)"
            r snapshot "$(rast container run --rm --snapshot 1 cat /etc/hostname)"

            st=0; rast container run --rm --pids-limit 10 bb sh -c 'n=0; while [ $n -lt 200 ]; do sleep 100 & n=$((n+1)); echo $n; done' > /tmp/forks 2>&1 || st=$?
            r pids-status $st
            r pids-last "$(grep -E '^[0-9]+$' /tmp/forks | tail -n 1)"
            r pids-error "$(grep -c "can't fork" /tmp/forks)"

            rast container run -d --name hog --memory 16M bb sh -c 'dd if=/dev/zero of=/dev/null bs=64M count=1; echo dd=$?; sleep 600'
            wait_log hog 'dd='
            r oom-log "$(rast container logs hog | grep dd=)"
            r oom-stats "$(rast container stats --json hog | tr -d ' \n')"
            rast container rm -f hog

            mkdir -p /tmp/vol && echo from-host > /tmp/vol/f
            st=0; rast container run --rm -v /tmp/vol:/data:ro bb sh -c 'cat /data/f; echo x > /data/g' > /tmp/rovol 2>&1 || st=$?
            r rovol-status $st
            r rovol-out "$(tr '\n' '|' < /tmp/rovol)"
            r rovol-host "$(ls /tmp/vol | tr '\n' ' ')"
            rast container run --rm -v /tmp/vol:/data bb sh -c 'echo written > /data/w'
            r rwvol "$(cat /tmp/vol/w)"
            st=0; rast container run --rm --read-only bb touch /x 2>/dev/null || st=$?
            r roroot $st
            r tmpfs "$(rast container run --rm --read-only --tmpfs /tmp bb sh -c 'touch /tmp/x && echo writable')"
            rast container run --rm --name hooked --hook 'poststart=/bin/sh,-c,echo poststart > /tmp/hook-poststart' \
                --hook 'poststop=/bin/sh,-c,cat > /tmp/hook-poststop' bb true
            r hook-poststart "$(cat /tmp/hook-poststart)"
            r hook-poststop "$(tr -d ' \n' < /tmp/hook-poststop | grep -o '"status":"[a-z]*"')"

            rast container run -d --name svc bb sh -c 'echo started; sleep 600'
            wait_log svc started
            r exec "$(rast container exec svc sh -c 'echo pid=$$ host=$(hostname)')"
            r ps "$(rast container ps | tail -n +2 | awk '{print $NF}' | tr '\n' ' ')"

            rast container run -d --name victim bb sleep 600
            rast container kill victim
            sleep 1
            r kill "$(rast container inspect victim | tr -d ' \n' | grep -o '"exitCode":[0-9]*')"
            rast container rm victim
            rast container run -d --name stubborn bb sh -c 'trap "" TERM; echo ready; while true; do sleep 1; done'
            wait_log stubborn ready
            start=$(date +%s); rast container stop -t 3 stubborn; end=$(date +%s)
            r stop-seconds $((end - start))
            r stop-exit "$(rast container inspect stubborn | tr -d ' \n' | grep -o '"exitCode":[0-9]*')"

            rast container run -d --name orphan bb sleep 600
            monitor=$(rast container inspect orphan | tr -d ' \n' | grep -o '"monitorPID":[0-9]*' | cut -d: -f2)
            kill -9 "$monitor"
            r orphan-running "$(rast container ps | grep -c orphan)"
            rast container stop -t 1 orphan
            r orphan-after "$(rast container ps -a | grep orphan | tr -s ' ')"

            printf 'help\nrun -d --name r1 bb sleep 300\nps\nstop -t 1 r1\nrm r1\nbogus\nexit\n' | rast container repl > /tmp/repl 2>&1
            r repl "$(tr '\n' '|' < /tmp/repl)"

            # Restart policies: s6 supervises these containers.
            field() { rast container inspect "$1" | tr -d ' \n' | grep -o "\"$2\":[^,}]*" | head -n 1 | cut -d: -f2 | tr -d '"'; }
            wait_field() { i=0; while [ "$(field "$1" "$2")" != "$3" ]; do i=$((i+1)); [ $i -lt 120 ] || { r timeout "$1 $2=$3"; return 0; }; sleep 0.5; done; }
            wait_new_pid() { i=0; while p=$(field "$1" pid); [ -z "$p" ] || [ "$p" = "$2" ]; do i=$((i+1)); [ $i -lt 120 ] || { r timeout "$1 new pid"; return 0; }; sleep 0.5; done; }
            r restart-rm "$(rast container run --rm -d --restart always bb true 2>&1)"
            r restart-fg "$(rast container run --restart always bb true 2>&1)"
            r restart-data "$(rast container run --data /tmp/other -d --restart always bb true 2>&1)"
            rast container run -d --name always --restart always bb sh -c 'echo up; sleep 600'
            wait_log always up
            pid=$(field always pid)
            kill -9 "$pid"
            wait_new_pid always "$pid"
            wait_field always status running
            r always-restart "$( [ "$(field always pid)" != "$pid" ] && echo new-pid) restarts=$(field always restarts) $(field always status)"
            r always-ps "$(rast container ps | grep ' always$' | tr -s ' ' | grep -o 'restarts [0-9]*')"
            rast container stop -t 2 always
            sleep 3
            r always-stopped "$(field always status) restarts=$(field always restarts) wanted=$(field always serviceWantedUp)"
            rast container run -d --name ok0 --restart on-failure bb sh -c 'echo ran'
            rast container run -d --name fail --restart on-failure:2 bb sh -c 'echo ran; exit 1'
            wait_field ok0 status exited
            i=0; while [ "$(rast container logs fail | grep -c '^ran$')" -lt 3 ] && [ $i -lt 60 ]; do i=$((i+1)); sleep 0.5; done
            sleep 3
            r ok0 "$(field ok0 status) $(field ok0 exitCode) restarts=$(field ok0 restarts) runs=$(rast container logs ok0 | grep -c '^ran$')"
            r fail "$(field fail status) $(field fail exitCode) restarts=$(field fail restarts) runs=$(rast container logs fail | grep -c '^ran$') wanted=$(field fail serviceWantedUp)"
            r fail-ps "$(rast container ps -a | grep ' fail$' | tr -s ' ' | grep -o 'exited ([0-9]*)\|restarts [0-9]*' | tr '\n' ' ')"
            r fail-log "$(rast container logs fail | grep -c '^rast: container fail exited with status 1; ')"
            r services-before "$(ls /run/rast/service | grep -c '^container-')"
            rast container rm always ok0 fail
            r services-after "$(ls -a /run/rast/service | grep -c 'container-')"
            r service-list "$(rast service list 2>&1 | grep -c container-)"
            pid=$(field web pid)
            kill -9 "$pid"
            wait_new_pid web "$pid"
            wait_field web status running
            r web-restart "$( [ "$(field web pid)" != "$pid" ] && echo new-pid) restarts=$(field web restarts) $(field web status)"

            rast container rm -f svc stubborn orphan web
            r left-services "$(ls -a /run/rast/service | grep -c 'container-')"
            r left-containers "$(ls /var/lib/rast/containers | grep -v '^lock$' | tr '\n' ' ')"
            r left-cgroups "$(find /sys/fs/cgroup/rast -mindepth 1 -type d 2>/dev/null | tr '\n' ' ')"
            r left-mounts "$(grep -c -e /var/lib/rast -e /run/rast/crun /proc/mounts || true)"
            r left-crun "$(crun --root /run/rast/crun list -q | tr '\n' ' ')"

            rast container run -d --name survivor bb sleep 600
            rast container run --name finished bb true
            r before-reboot "$(rast container ps -a | tail -n +2 | awk '{print $NF}' | tr '\n' ' ')"
            """#

        static let boot2 = #"""
            r() { echo "RAST-REPORT $*"; }
            r running-after "$(rast container ps | tail -n +2 | awk '{print $NF}' | tr '\n' ' ')"
            r web-supervised "$(ls /run/rast/service | grep -c '^container-') $(rast container ps | grep ' web$' | grep -o 'restart always, restarts [0-9]*')"
            r survivor "$(rast container ps -a | grep survivor | tr -s ' ')"
            r finished "$(rast container ps -a | grep finished | tr -s ' ')"
            rast container rm survivor finished
            rast container rm -f web
            r left-after "$(ls /var/lib/rast/containers | grep -v '^lock$' | tr '\n' ' ')"
            r images-after "$(rast container images | tail -n +2 | awk '{print $1}')"
            """#

        @Test func containersInABootedImage() throws {
            try ImageTestSupport.requirements()
            try Require.programs("umoci", "busybox", "tar")
            let scratch = try Scratch("rast-containers")
            let out = scratch.appending("out")

            // The test image: busybox as one layer, in an OCI layout, tarred onto a disk.
            let builder = try OCILayoutBuilder(layout: scratch.appending("images/layout"), scratch: scratch.appending("layers"))
            try builder.image("bb", layers: [try OCILayoutBuilder.busyboxEntries()], cmd: ["/bin/sh"])
            let disk = scratch.appending("images.tar")
            try Command("tar", ["-C", scratch.appending("images"), "-cf", disk, "layout"]).run()

            // The recipe also stores it at build time and starts a container of it at boot.
            let recipe = try ImageTestSupport.recipe("container", output: out) { recipe in
                recipe.output.formats = [.raw]
                var web = ContainerSpec(image: "oci:\(builder.layout):bb")
                web.imageName = "bb"
                web.name = "web"
                web.command = ["sh", "-c", "echo boot-started; sleep 600"]
                web.memory = 32 << 20
                web.restart = "always"
                recipe.containers = [web]
            }
            _ = try ImageBuilder(recipe: recipe, options: ImageTestSupport.options(bootTest: false)).build()
            let image = out + "/container.raw"

            func boot(_ number: Int, _ script: String) throws -> [String: String] {
                let test = BootTest(image: image, format: "raw", firmware: .bios, timeout: 900, memory: "1G",
                                    extraChecks: script, persistent: true, finish: number == 1 ? "reboot -f" : "poweroff -f",
                                    extraDisks: [.init(path: disk, format: "raw", snapshot: true)],
                                    consoleLog: scratch.appending("boot-\(number).log"))
                let result = try test.run(progress: TerminalProgress(interactive: false))
                let console = (try? Files.readString(result.consoleLog)) ?? ""
                #expect(result.passed, "boot \(number): \(result.outcome)\n\(console.split(separator: "\n").suffix(60).joined(separator: "\n"))")
                var reports: [String: String] = [:]
                for line in result.otherReports {
                    let key = String(line.prefix { $0 != " " })
                    let value = line.dropFirst(key.count).trimmingCharacters(in: .whitespaces)
                    reports[key] = reports[key].map { $0 + "\n" + value } ?? value
                }
                print("containers: boot \(number) took \(String(format: "%.1f", result.seconds)) s")
                return reports
            }

            let first = try boot(1, Self.boot1)
            for (key, value) in first.sorted(by: { $0.key < $1.key }) { print("containers: \(key) = \(value)") }
            #expect(first["info"]?.contains("crun version 1.8.1") == true)
            #expect(first["info"]?.contains("cgroups:      v2") == true, "cgroup2 is mounted: \(first["info"] ?? "")")
            #expect(first["images"] == "1", "the image the build stored and the one pulled in the guest are one")
            #expect(first["boot-web"] == "1", "the recipe's container runs after boot")
            #expect(first["boot-log"] == "boot-started")
            // Its own PID namespace and host name; only loopback without a network.
            #expect(first["pid1"] == "pid=1 host=c1")
            #expect(first["net-none"] == "lo")
            #expect(first["user"] == "65534")
            #expect(first["net-host"] == "1", "--network host shares the host's network namespace")
            #expect(first["net-none-ns"] == "0")
            #expect(first["env-workdir"] == "hello /tmp")
            #expect(first["kill"] == "\"exitCode\":137", "kill sends SIGKILL; the monitor records it")
            #expect(first["userns"] == "uid=0 map= 0 100000 65536", "root in the container is 100000 on the host")
            #expect(first["cpus"] == "50000 100000")
            #expect(first["snapshot"] == "rastos-container", "a container from snapshot 1 sees its /etc")
            // The fork loop stops at the limit instead of starting 200 processes.
            #expect(first["pids-status"] != "0")
            #expect((Int(first["pids-last"] ?? "") ?? 999) < 10, "forks before the limit: \(first["pids-last"] ?? "none")")
            #expect(first["pids-error"].map { $0 != "0" } == true, "the shell says it cannot fork")
            // The memory hog is OOM-killed; the cgroup counts it.
            #expect(first["oom-log"] == "dd=137")
            #expect(first["oom-stats"]?.contains("\"oomKills\":1") == true, "\(first["oom-stats"] ?? "")")
            #expect(first["oom-stats"]?.contains("\"memoryLimit\":16777216") == true)
            // Volumes: read-only refuses writes, read-write reaches the host.
            #expect(first["rovol-status"] != "0")
            #expect(first["rovol-out"]?.hasPrefix("from-host|") == true)
            #expect(first["rovol-out"]?.contains("Read-only file system") == true, "\(first["rovol-out"] ?? "")")
            #expect(first["rovol-host"] == "f")
            #expect(first["rwvol"] == "written")
            #expect(first["roroot"] != "0")
            #expect(first["tmpfs"] == "writable", "--tmpfs gives a read-only container a writable /tmp")
            #expect(first["hook-poststart"] == "poststart")
            #expect(first["hook-poststop"] == "\"status\":\"stopped\"", "poststop hooks get the state on stdin")
            // exec joins the running container (not as its PID 1).
            let exec = first["exec"] ?? ""
            #expect(exec.hasPrefix("pid=") && !exec.hasPrefix("pid=1 ") && exec.hasSuffix("host=svc"), "\(exec)")
            #expect(first["ps"] == "svc web")
            // stop: SIGTERM is ignored, SIGKILL after the timeout.
            #expect((Int(first["stop-seconds"] ?? "") ?? 0) >= 3, "stop waited for the timeout")
            #expect(first["stop-exit"] == "\"exitCode\":137")
            // A container outlives its monitor; stop still works.
            #expect(first["orphan-running"] == "1")
            #expect(first["orphan-after"]?.contains("exited") == true)
            // The prompt.
            let repl = first["repl"] ?? ""
            #expect(repl.contains("Commands (each takes"), "\(repl)")
            #expect(repl.contains("r1"))
            #expect(repl.contains("unknown command 'bogus'"))
            // rm leaves no container, cgroup, mount or crun state behind.
            #expect(first["left-containers"] == "")
            #expect(first["left-cgroups"] == "")
            #expect(first["left-mounts"] == "0")
            #expect(first["left-crun"] == "")
            // Restart policies under s6.
            #expect(first["restart-rm"]?.contains("cannot be combined with --rm") == true, "\(first["restart-rm"] ?? "")")
            #expect(first["restart-fg"]?.contains("needs -d") == true, "\(first["restart-fg"] ?? "")")
            #expect(first["restart-data"]?.contains("containers below --data cannot be restarted") == true, "\(first["restart-data"] ?? "")")
            #expect(first["always-restart"] == "new-pid restarts=1 running", "a killed always-container comes back")
            #expect(first["always-ps"] == "restarts 1")
            #expect(first["always-stopped"] == "exited restarts=1 wanted=false", "stop keeps it stopped")
            #expect(first["ok0"] == "exited 0 restarts=0 runs=1", "on-failure leaves an exit 0 alone")
            #expect(first["fail"] == "exited 1 restarts=2 runs=3 wanted=false", "on-failure:2 restarts twice, then stays down")
            #expect(first["fail-log"] == "3", "finish logs each exit: two restarts, then it stays down")
            #expect(first["fail-ps"] == "exited (1) restarts 2", "\(first["fail-ps"] ?? "")")
            #expect(first["services-before"] == "4", "always, ok0, fail and the boot container web have service directories")
            #expect(first["services-after"] == "1", "rm removes the service directories (web's is left)")
            #expect(first["service-list"] == "0", "rast service list leaves containers out")
            #expect(first["web-restart"] == "new-pid restarts=1 running", "the boot container restarts after a kill")
            #expect(first["left-services"] == "0")
            #expect(first["timeout"] == nil, "a container did not print what it should: \(first["timeout"] ?? "")")

            let second = try boot(2, Self.boot2)
            for (key, value) in second.sorted(by: { $0.key < $1.key }) { print("containers: after reboot \(key) = \(value)") }
            #expect(second["running-after"] == "web", "only the boot container runs again")
            #expect(second["web-supervised"] == "1 restart always, restarts 0", "the boot container is supervised again after the reboot")
            #expect(second["survivor"]?.contains("the system restarted while it ran") == true, "\(second["survivor"] ?? "")")
            #expect(second["finished"]?.contains("exited (0)") == true)
            #expect(second["left-after"] == "")
            #expect(second["images-after"] == "bb")
            try ImageTestSupport.expectNoLeftovers(under: out)
        }
    }
}
