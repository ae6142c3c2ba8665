#!/bin/sh
# VM suite: a media device shared by two drivers (the usb-av-like topology: au0828-like video,
# snd-usb-audio-like audio) with the Media Device Allocator's rules: the kernel selftest
# media_dev_allocator.sh's unbind/bind procedure in both orders, under every lifetime model.
set -u
. "$(dirname "$0")/lib.sh"

start() { mcemu serve "$@" 2>/tmp/serve.log & SERVE=$!; mcemu ctl status --wait 30 >/dev/null; }
stop() { kill -TERM "$SERVE" 2>/dev/null; wait "$SERVE"; }

start --topology usb-av-like
v4l2-compliance -m /dev/media0 > /tmp/compliance-av.txt 2>&1
line=$(grep "^Grand Total for au0828 device /dev/media0:" /tmp/compliance-av.txt)
case "$line" in
  *", Failed: 0, "*) ok "usb-av-like: v4l2-compliance passes every node ($line)" ;;
  *) not_ok "usb-av-like: v4l2-compliance passes every node" "$line
$(grep -B3 ': FAIL' /tmp/compliance-av.txt | head -40)" ;;
esac
media-ctl -p > /tmp/av-p.txt 2>&1
contains "usb-av-like: the audio entity is linked from the decoder across drivers" /tmp/av-p.txt '-> "USB Audio":0 [ENABLED]'
mcemu ctl status > /tmp/av-status.json
contains "usb-av-like: ctl status lists both bound drivers" /tmp/av-status.json '"snd-usb-audio"'
# The whole device unplugged (both drivers at once) and replugged: both drivers bound again.
check "usb-av-like: ctl unplug takes both drivers" mcemu ctl unplug
eventually "usb-av-like: /dev/media0 leaves" sh -c '! test -e /dev/media0'
check "usb-av-like: ctl replug" mcemu ctl replug
eventually "usb-av-like: the replugged device has both drivers' 4 entities" sh -c "media-ctl -p | grep -c '^- entity' | grep -qx 4"
eventually "usb-av-like: the old instance is released, nothing left" sh -c \
  "mcemu ctl audit --summary | grep -q '^instances=2 registered=1 unplugged=0 released=1 open_handles=0 '"
stop

# The same procedure through the sysfs-like bind/unbind files (--bus-root), finding the device
# names in the driver directories as media_dev_allocator.sh does.
start --topology usb-av-like --bus-root /run/mcemu/sys
MDRIVER=/run/mcemu/sys/bus/usb/drivers/au0828
ADRIVER=/run/mcemu/sys/bus/usb/drivers/snd-usb-audio
MDEV=$(cd $MDRIVER && ls -d *-*)
ADEV=$(cd $ADRIVER && ls -d *-*.1)
check "bus: the video driver's directory lists its device 1-2" test "$MDEV" = 1-2
check "bus: the audio driver's lists its interface 1-2:1.1" test "$ADEV" = 1-2:1.1
present() { eventually "bus: $1: /dev/media0 is there" test -e /dev/media0; }
gone() { eventually "bus: $1: /dev/media0 is gone" sh -c '! test -e /dev/media0'; }
check "bus: unbind $MDEV from au0828" sh -c "echo $MDEV > $MDRIVER/unbind"; present "video unbound"
check "bus: the unbound driver lists no device" sh -c "! ls $MDRIVER | grep -q 1-2"
check "bus: unbind $ADEV from snd-usb-audio" sh -c "echo $ADEV > $ADRIVER/unbind"; gone "both unbound"
check "bus: bind au0828" sh -c "echo $MDEV > $MDRIVER/bind"; present "video bound"
check "bus: bind snd-usb-audio" sh -c "echo $ADEV > $ADRIVER/bind"; present "both bound"
check "bus: unbind au0828" sh -c "echo $MDEV > $MDRIVER/unbind"; present "video unbound"
check "bus: bind au0828" sh -c "echo $MDEV > $MDRIVER/bind"; present "video bound again"
check "bus: unbind snd-usb-audio" sh -c "echo $ADEV > $ADRIVER/unbind"; present "audio unbound"
check "bus: bind snd-usb-audio" sh -c "echo $ADEV > $ADRIVER/bind"; present "audio bound again"
check "bus: a second bind is EBUSY" sh -c "sh -c 'echo $ADEV > $ADRIVER/bind' 2>&1 | grep -qi busy"
check "bus: the wrong device name is refused" sh -c "! echo $ADEV > $MDRIVER/unbind 2>/dev/null"
check "bus: 4 entities at the end" sh -c "media-ctl -p | grep -c '^- entity' | grep -qx 4"
stop

for lt in refcount devm registered-bit; do
  start --topology usb-av-like --lifetime $lt
  hotplug-client allocator $lt > /tmp/allocator-$lt.log 2>&1
  fold_results "allocator" /tmp/allocator-$lt.log
  stop
  check "$lt: the daemon exits cleanly" test $? -eq 0
done

finish
