#!/bin/sh
# VM suite: the mcemu daemon's /dev/media0 driven by real clients.
set -u
. "$(dirname "$0")/lib.sh"

expect_info() { # board hw_revision
  out=/tmp/compliance-$1.txt
  v4l2-compliance -C never -m /dev/media0 > "$out" 2>&1
  kver=$(uname -r | sed 's/[^0-9.].*//; s/^\([0-9]*\.[0-9]*\)$/\1.0/')
  has_line "$1: driver name" "$out" "Driver name      : omap3isp"
  has_line "$1: model" "$out" "Model            : TI OMAP3 ISP"
  has_line "$1: empty serial" "$out" "Serial           : "
  has_line "$1: bus info" "$out" "Bus info         : platform:480bc000.isp"
  has_line "$1: hardware revision" "$out" "Hardware revision: $2"
  has_line "$1: media version is the running kernel's" "$out" "Media version    : $kver"
  has_line "$1: driver version is the running kernel's" "$out" "Driver version   : $kver"
  has_line "$1: v4l2-compliance MEDIA_IOC_DEVICE_INFO" "$out" "test MEDIA_IOC_DEVICE_INFO: OK"
  has_line "$1: v4l2-compliance invalid ioctls (ENOTTY)" "$out" "test invalid ioctls: OK"
  has_line "$1: v4l2-compliance multiple opens" "$out" "test for unlimited opens: OK"
}

start() { # args to mcemu serve
  mcemu serve "$@" 2>/tmp/serve.log &
  SERVE=$!
}

stop() {
  kill -TERM "$SERVE" 2>/dev/null
  wait "$SERVE"
}

check "ctl status without a daemon fails" sh -c '! mcemu ctl status'

start --board beagleboard-xm
check "ctl status --wait 30 once the nodes are registered" mcemu ctl status --wait 30
mcemu ctl status > /tmp/status.json
contains "status reports media0 registered" /tmp/status.json '"registered": true'
check "/dev/media0 is a character device" test -c /dev/media0
expect_info beagleboard-xm "0x000000f0 (240)"
media-ctl -d /dev/media0 -p > /tmp/media-ctl.txt 2>&1
contains "media-ctl opens the node and gets ENOTTY for the graph ioctls (not implemented yet)" \
  /tmp/media-ctl.txt "Failed to enumerate /dev/media0 (-25)"
check "a second daemon on the same control socket is refused" sh -c \
  'mcemu serve 2>/tmp/second.log; test $? -ne 0 && grep -q "already listening" /tmp/second.log'
stop
check "SIGTERM shuts the daemon down cleanly" test "$?" -eq 0
check "the node goes away with the daemon" test ! -e /dev/media0
check "the control socket goes away with the daemon" test ! -e /run/mcemu/control.sock

start --board n900
check "n900: ctl status --wait 30" mcemu ctl status --wait 30
expect_info n900 "0x00000020 (32)"
stop

# Another driver's /dev/media0 exists: take the first free number.
mknod /dev/media0 c 1 3
start
check "with /dev/media0 taken, ctl status --wait 30" mcemu ctl status --wait 30
check "the daemon registers /dev/media1" test -c /dev/media1
stop
rm -f /dev/media0

check "an unknown board is refused with a message" sh -c \
  'mcemu serve --board pandaboard 2>&1 | grep -q "unknown board \"pandaboard\""'
finish
