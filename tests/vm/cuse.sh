#!/bin/sh
# VM suite: the CUSE transport against the kernel, through the loopback test device.
set -u
cuse-testdev cusetest &
dev=$!
i=0
while [ ! -c /dev/cusetest ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
cuse-client /dev/cusetest "$dev"
rc=$?
# The device exits by itself after the unregister step; make sure it did.
i=0
while kill -0 "$dev" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
if kill -0 "$dev" 2>/dev/null; then
  echo "not ok - cuse-testdev still running after its last handle closed"
  kill "$dev"
  rc=1
fi
exit $rc
