#!/bin/sh
# The benchmarks inside the VM (see scripts/bench).
set -eu
mcemu serve --board beagleboard-xm 2>/tmp/serve.log &
daemon=$!
mcemu ctl status --wait 60 >/dev/null
cuse-floor cuse-floor 2>/tmp/floor.log &
floor=$!
i=0; while [ ! -e /dev/cuse-floor ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
echo "== ioctl latency and throughput: mcemu vs the CUSE floor (same rounds, no work)"
ioctl-bench /dev/cuse-floor /dev/video6 "$(media-ctl -e 'OMAP3 ISP CCDC')" /tmp/bench.json
echo MCEMU-JSON-BEGIN; cat /tmp/bench.json; echo MCEMU-JSON-END
kill $floor; kill -TERM $daemon; wait $daemon
