#!/bin/sh
# The demo itself (POSIX sh: it also runs inside the VM's busybox). Root, with /dev/cuse.
set -u
board=${1:-beagleboard-xm}
run() { echo; echo "\$ $*"; "$@"; }
echo "\$ mcemu serve --board $board &"
mcemu serve --board "$board" &
pid=$!
run mcemu ctl status --wait 60 > /tmp/status.json || { cat /tmp/status.json; kill "$pid"; exit 1; }
echo "(status: $(grep -c '"registered": true' /tmp/status.json) nodes registered)"
run ls /dev/media0 /dev/video0 /dev/video6 /dev/v4l-subdev0 /dev/v4l-subdev8
run media-ctl -d /dev/media0 -p
if [ "$board" = n900 ]; then
  links='"et8ek8 3-003e":0->"OMAP3 ISP CCP2":0[1], "OMAP3 ISP CCP2":1->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":1->"OMAP3 ISP CCDC output":0[1]'
else
  links='"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":1->"OMAP3 ISP CCDC output":0[1]'
fi
run media-ctl -d /dev/media0 -l "$links"
echo; echo "\$ media-ctl -d /dev/media0 -p | grep ENABLED"
media-ctl -d /dev/media0 -p | grep ENABLED
run media-ctl -d /dev/media0 -l '"OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1]'
echo "(refused: the CCDC drives one output at a time)"
run media-ctl -d /dev/media0 -r
run v4l2-ctl -d /dev/video2 -D
echo; echo "\$ v4l2-compliance -m /dev/media0 | grep Total"
v4l2-compliance -C never -m /dev/media0 2>&1 | grep "^Total\|^Grand"
echo "(video nodes: only QUERYCAP so far)"
echo; echo "\$ kill -TERM $pid"
kill -TERM "$pid"
wait "$pid"
echo "daemon exited with status $?"
