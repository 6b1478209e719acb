#!/bin/sh
# Runs a command in a fresh network namespace that has only loopback, so browser and Node WebRTC
# traffic in tests can reach nothing but 127.0.0.1 . As root this is
# `unshare --net`; otherwise a user namespace maps us to root inside. Set TABSWARM_NO_NETNS=1 to
# run without it (e.g. where unshare is not permitted; WebRTC then may use other interfaces).
if [ "${TABSWARM_NO_NETNS:-0}" = 1 ]; then exec "$@"; fi
# Lets programs (e.g. the benchmarks) see that they already run inside the namespace.
export TABSWARM_NETNS=1
if [ "$(id -u)" = 0 ]; then U="unshare --net"; else U="unshare --map-root-user --net"; fi
exec $U sh -c 'ip link set lo up && exec "$@"' sh "$@"
