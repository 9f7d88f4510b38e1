#!/bin/sh
# The unified cgroup (v2) hierarchy, where crun puts each container's limits. Run by rcS
# with the other hooks in /etc/rc.d, before anything starts containers.
grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts && exit 0
mount -t cgroup2 -o nosuid,nodev,noexec,relatime,nsdelegate cgroup2 /sys/fs/cgroup ||
    echo "10-cgroup2: cannot mount cgroup2 at /sys/fs/cgroup: containers will not start"
