#!/bin/sh
# VM suite: race breakpoints and the lifetime models. The 2016 bug classes show up as
# use-after-free events under devm / registered-bit and never under refcount.
set -u
. "$(dirname "$0")/lib.sh"

serve() { mcemu serve "$@" 2>/tmp/serve.log & PID=$!; mcemu ctl status --wait 30 >/dev/null || not_ok "daemon ready"; }
stop() { kill -TERM $PID 2>/dev/null; wait $PID; }

for lt in refcount registered-bit devm; do
  case $lt in refcount) want_inflight=0 ;; registered-bit) want_inflight=1 ;; devm) want_inflight=2 ;; esac  # devm: the close too
  # 6f0dd24a084a: an MC ioctl past the registered check when the device goes.
  serve --lifetime $lt
  check "$lt: break on MEDIA_IOC_DEVICE_INFO at mid" mcemu ctl break --node /dev/media0 --ioctl MEDIA_IOC_DEVICE_INFO --stage mid
  media-ctl -d /dev/media0 -p > /tmp/app.out 2>&1 &
  app=$!
  check "$lt: media-ctl parks inside the ioctl" mcemu ctl wait-hit --timeout 20
  check "$lt: unplug while it is parked" mcemu ctl unplug
  check "$lt: continue" mcemu ctl continue
  wait $app; rc=$?
  if [ $lt = refcount ]; then
    check "$lt: the parked call completes (media-ctl enumerates the rest: EIO)" grep -q "Failed to enumerate /dev/media0 (-5)" /tmp/app.out
  else
    check "$lt: the parked call gets EIO instead of touching freed memory" grep -q "Failed to enumerate /dev/media0 (-5)" /tmp/app.out
  fi
  eventually "$lt: in-flight call across unplug: $want_inflight use-after-free event(s)" sh -c "mcemu ctl audit --summary | grep -q 'released=1 .*uaf_events=$want_inflight\$'"
  stop

  # a087ce704b80 / 5b28dde51d0c: a handle kept open across unbind, used, then closed.
  serve --lifetime $lt
  hotplug-client stale /dev/media0 > /tmp/stale.out 2>&1
  check "$lt: stale media handle ioctl gives EIO" grep -q "stale ioctl: Err(EIO)" /tmp/stale.out
  [ $lt = devm ] && want=2 || want=0
  eventually "$lt: stale handle ioctl and close: $want use-after-free event(s)" sh -c "mcemu ctl audit --summary | grep -q 'released=1 .*uaf_events=$want\$'"
  eventually "$lt: the media device is released" sh -c 'mcemu ctl audit --summary | grep -q "released=1"'
  stop
done

# Breakpoints on other nodes and stages; bad requests get messages.
serve
check "break on a video node at entry" mcemu ctl break --node /dev/video2 --ioctl VIDIOC_QUERYCAP --stage entry
v4l2-ctl -d /dev/video2 --info > /tmp/app.out 2>&1 &
app=$!
mcemu ctl wait-hit --timeout 20 > /tmp/hit.json
contains "wait-hit reports the node, ioctl and stage" /tmp/hit.json '"ioctl": "VIDIOC_QUERYCAP"'
check "other calls on the node go on while one is parked" sh -c 'v4l2-ctl -d /dev/video2 --info | grep -q ispvideo'
check "continue" mcemu ctl continue
wait $app
check "the parked app completes" grep -q "Driver name      : ispvideo" /tmp/app.out
check "wait-hit times out with a message" sh -c '! mcemu ctl wait-hit --timeout 0.2 2>&1 | grep -q . || mcemu ctl wait-hit --timeout 0.2 2>&1 | grep -q "no breakpoint hit"'
check "continue with nothing parked is refused" sh -c '! mcemu ctl continue 2>/dev/null'
check "an unknown ioctl name is refused" sh -c 'mcemu ctl break --node /dev/media0 --ioctl NOPE 2>&1 | grep -q "unknown ioctl"'
check "an unknown node is refused" sh -c 'mcemu ctl break --node /dev/video99 --ioctl VIDIOC_QUERYCAP 2>&1 | grep -q "no node"'
check "inject EIO into the next VIDIOC_QUERYCAP on /dev/video2" mcemu ctl inject --node /dev/video2 --ioctl VIDIOC_QUERYCAP --errno EIO
check "the app sees the injected EIO" sh -c 'v4l2-ctl -d /dev/video2 -D 2>&1 | grep -q "Input/output error"'
check "the fault is spent after one call" sh -c 'v4l2-ctl -d /dev/video2 -D | grep -q ispvideo'
check "inject a 2 s delay" mcemu ctl inject --node /dev/video2 --ioctl VIDIOC_QUERYCAP --delay-ms 2000
v4l2-ctl -d /dev/video2 -D > /tmp/delayed.out 2>&1 &
app=$!
sleep 0.5
check "the delayed call is still in flight after 0.5 s" kill -0 $app
check "other nodes answer meanwhile" sh -c 'v4l2-ctl -d /dev/video3 -D | grep -q ispvideo'
wait $app
check "the delayed call then completes" grep -q ispvideo /tmp/delayed.out
check "a fault without errno or delay is refused" sh -c 'mcemu ctl inject --node /dev/video2 --ioctl VIDIOC_QUERYCAP 2>&1 | grep -q "needs an errno"'
check "an unknown errno name is refused" sh -c 'mcemu ctl inject --node /dev/video2 --ioctl VIDIOC_QUERYCAP --errno EWHAT 2>&1 | grep -q "unknown errno"'
check "an unknown stage is refused" sh -c 'mcemu ctl break --node /dev/media0 --ioctl MEDIA_IOC_DEVICE_INFO --stage late 2>&1 | grep -q "unknown stage"'
stop

# The documented example script runs as written.
MCEMU_SERVE_ARGS="--lifetime registered-bit" sh /mcemu/scripts/examples/unplug-during-ioctl.sh > /tmp/example.out 2>&1
check "example script: the app's call was answered ENODEV" grep -q "No such device" /tmp/example.out
check "example script: one use-after-free event recorded" grep -q "uaf_events=1" /tmp/example.out
sh /mcemu/scripts/examples/unplug-during-dqbuf.sh > /tmp/example-dqbuf.out 2>&1
check "DQBUF example: yavta's blocked DQBUF returns EINVAL" grep -q "Unable to dequeue buffer: Invalid argument (22)" /tmp/example-dqbuf.out
check "DQBUF example: no handle left open once yavta exits" grep -q "open_handles=0" /tmp/example-dqbuf.out
MCEMU_SERVE_ARGS="--errno-profile strict" sh /mcemu/scripts/examples/unplug-during-dqbuf.sh > /tmp/example-dqbuf.out 2>&1
check "DQBUF example, strict: ENODEV" grep -q "Unable to dequeue buffer: No such device (19)" /tmp/example-dqbuf.out
finish
