#!/bin/sh
# Starts rast's services: `rast service setup` turns the booted snapshot's definitions
# (/etc/rast/services/NAME.toml) into s6 service directories in /run/rast/service (and prints
# any problem with a definition, file:line:column), then s6-svscan supervises them, in a
# session of its own so that it outlives this boot script. See docs/services.md.
command -v s6-svscan >/dev/null 2>&1 || exit 0
[ -d /etc/rast/services ] || exit 0
rast service setup || exit 0
setsid s6-svscan /run/rast/service </dev/null >/dev/console 2>&1 &
