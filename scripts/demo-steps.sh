#!/bin/sh
# The demo itself (POSIX sh: it also runs inside the VM's busybox). Root, with /dev/cuse.
set -u
board=${1:-beagleboard-xm}
echo "\$ mcemu serve --board $board &"
mcemu serve --board "$board" &
pid=$!
echo "\$ mcemu ctl status --wait 30"
mcemu ctl status --wait 30 || { kill "$pid"; exit 1; }
echo "\$ ls -l /dev/media*"
ls -l /dev/media*
echo "\$ v4l2-compliance -m /dev/media0   (Media Driver Info and the required ioctls)"
v4l2-compliance -C never -m /dev/media0 | sed -n '/Media Driver Info/,/Allow for multiple opens/p'
echo "\$ media-ctl -d /dev/media0 -p   (the graph ioctls come with the omap3isp topology)"
media-ctl -d /dev/media0 -p
echo "\$ kill -TERM $pid"
kill -TERM "$pid"
wait "$pid"
echo "daemon exited with status $?"
