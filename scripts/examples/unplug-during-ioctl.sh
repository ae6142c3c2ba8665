#!/bin/sh
# Example: a deterministic "the camera goes away while my program is inside an ioctl" test.
# Run it where mcemu serves (natively as root, or: scripts/vm-run -- sh scripts/examples/unplug-during-ioctl.sh).
#
# Any program works as the app under test; here v4l2-ctl queries /dev/video2 (VIDIOC_QUERYCAP).
set -eu
mcemu serve ${MCEMU_SERVE_ARGS:-} 2>/tmp/mcemu.log &        # e.g. MCEMU_SERVE_ARGS="--lifetime registered-bit"
daemon=$!
mcemu ctl status --wait 30 >/dev/null

# 1. Park the next VIDIOC_QUERYCAP on /dev/video2 inside the driver ("mid": holding its objects).
mcemu ctl break --node /dev/video2 --ioctl VIDIOC_QUERYCAP --stage mid
# 2. Start the app; it blocks inside the ioctl.
v4l2-ctl -d /dev/video2 --info > /tmp/app.out 2>&1 &
app=$!
mcemu ctl wait-hit --timeout 10
# 3. Unplug while the call is in flight, then let the call go on.
mcemu ctl unplug
mcemu ctl continue
# 4. What did the app see, and did anything touch freed memory?
wait $app && echo "app: exit 0" || echo "app: exit $?"
cat /tmp/app.out
mcemu ctl audit --summary
kill -TERM $daemon; wait $daemon
