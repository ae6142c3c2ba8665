#!/bin/sh
# Example: a deterministic "the camera goes away while my program waits in VIDIOC_DQBUF" test.
# Run it where mcemu serves (natively as root, or:
#   scripts/vm-run -- sh scripts/examples/unplug-during-dqbuf.sh).
#
# The app under test here is yavta capturing from the BeagleBoard-xM resizer output; any
# streaming program works the same way.
set -eu
mcemu serve ${MCEMU_SERVE_ARGS:-} 2>/tmp/mcemu.log &        # e.g. MCEMU_SERVE_ARGS="--errno-profile strict"
daemon=$!
mcemu ctl status --wait 30 >/dev/null
media-ctl -r -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]'
media-ctl -V '"mt9p031 1-0048":0[SGRBG12 640x480], "OMAP3 ISP CCDC":2[SGRBG10 640x480], "OMAP3 ISP preview":1[UYVY 640x480], "OMAP3 ISP resizer":1[UYVY 320x240]'
video=$(media-ctl -e "OMAP3 ISP resizer output")

# 1. A stuck pipeline: from now on no frame completes, so a DQBUF can only wait.
mcemu ctl inject --node "$video" --stall-ms 600000
# 2. Stop the app's first VIDIOC_DQBUF at the driver's door, so we know where it is.
mcemu ctl break --node "$video" --ioctl VIDIOC_DQBUF --stage entry
yavta -c3 -u -f UYVY -s 320x240 "$video" > /tmp/app.out 2>&1 &
app=$!
mcemu ctl wait-hit --timeout 10
# 3. Let it in (it blocks: nothing will be done), then unplug under it.
mcemu ctl continue
sleep 0.5
mcemu ctl unplug
# 4. What did the app see? mainline/enodev: EINVAL (the queue was released), strict: ENODEV.
wait $app && echo "app: exit 0" || echo "app: exit $?"
cat /tmp/app.out
mcemu ctl audit --summary
kill -TERM $daemon; wait $daemon
