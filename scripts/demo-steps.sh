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
if [ "$board" = beagleboard-xm ]; then
  # The classic recipe: sensor -> CCDC -> preview -> resizer -> memory, then real frames
  # (v4l2-compliance left the sensor's controls changed: back to the scene).
  run v4l2-ctl -d "$(media-ctl -d /dev/media0 -e 'mt9p031 1-0048')" --set-ctrl test_pattern=0
  run media-ctl -d /dev/media0 -r -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]'
  run media-ctl -d /dev/media0 -V '"mt9p031 1-0048":0[SGRBG12 1280x720], "OMAP3 ISP CCDC":2[SGRBG10 1280x720], "OMAP3 ISP preview":1[UYVY 1280x720], "OMAP3 ISP resizer":1[UYVY 640x360]'
  dev=$(media-ctl -d /dev/media0 -e "OMAP3 ISP resizer output")
  run yavta -c10 -u -f UYVY -s 640x360 "$dev"
  run v4l2-ctl -d "$dev" --set-fmt-video width=640,height=360,pixelformat=UYVY --stream-user --stream-count=8 --stream-to=/tmp/frames.raw
  dd if=/tmp/frames.raw of=/tmp/frame.raw bs=460800 skip=7 count=1 2>/dev/null
  run frame2png /tmp/frame.raw 640 360 UYVY /tmp/frame.png
  if [ -n "${MCEMU_DEMO_OUT:-}" ]; then
    cp /tmp/frame.png "$MCEMU_DEMO_OUT/frame.png"
  else
    # Inside the VM: hand the file to scripts/demo on the host through the console.
    echo "MCEMU-FILE-BEGIN frame.png"; base64 /tmp/frame.png; echo "MCEMU-FILE-END"
  fi
fi
echo; echo "\$ kill -TERM $pid"
kill -TERM "$pid"
wait "$pid"
echo "daemon exited with status $?"
