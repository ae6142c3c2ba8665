#!/bin/sh
# VM suite: hot-unplug with handles open, replug, close order, the kernel selftests' loops and a
# stress run, against the real daemon through /dev/cuse.
set -u
. "$(dirname "$0")/lib.sh"

run_client() { # NAME ARGS...: runs hotplug-client against a fresh daemon, folds its results in
  name=$1; shift
  mcemu serve $SERVE_ARGS 2>/tmp/serve-$name.log &
  pid=$!
  if ! mcemu ctl status --wait 30 >/dev/null; then not_ok "$name: daemon ready"; kill $pid; return; fi
  env ${CLIENT_ENV:-} hotplug-client "$@" > /tmp/client-$name.log 2>&1
  fold_results "$name" /tmp/client-$name.log
  kill -TERM $pid; wait $pid
  check "$name: daemon exits cleanly after the scenario" test $? -eq 0
}

for profile in mainline enodev strict; do
  SERVE_ARGS="--errno-profile $profile" run_client "errnos-$profile" errnos $profile
done
for profile in mainline enodev strict; do
  SERVE_ARGS="--errno-profile $profile" run_client "streaming-$profile" streaming $profile
done
for lifetime in devm registered-bit; do
  SERVE_ARGS="--lifetime $lifetime" run_client "streaming-$lifetime" streaming mainline
done
SERVE_ARGS="" run_client streamon-race streamon-race
SERVE_ARGS="" CLIENT_ENV="LD_PRELOAD=/usr/local/lib/libmcemu_preload.so" run_client mmap-unplug mmap-unplug
SERVE_ARGS="" run_client close-orders close-orders
SERVE_ARGS="" run_client selftests selftests 10
SERVE_ARGS="--board n900" run_client stress stress 30 4
# sysfs-style bind/unbind files, as the kernel selftests' bind_unbind_sample.sh uses them.
mcemu serve --bus-root /run/mcemu/sys 2>/tmp/serve-bus.log &
pid=$!
mcemu ctl status --wait 30 >/dev/null
D=/run/mcemu/sys/bus/platform/drivers/omap3isp
check "bus: the driver directory lists bind and unbind" sh -c "ls $D | tr '\\n' ' ' | grep -q 'bind unbind'"
check "bus: unbind" sh -c "echo 480bc000.isp > $D/unbind"
check "bus: the nodes are gone after unbind" test ! -e /dev/media0
check "bus: a second unbind fails (ENODEV)" sh -c "! echo 480bc000.isp > $D/unbind 2>/dev/null"
check "bus: an unknown device name fails" sh -c "! echo 1-5:1.0 > $D/bind 2>/dev/null"
check "bus: reading a store-only file fails" sh -c "! cat $D/bind 2>/dev/null"
check "bus: bind" sh -c "echo 480bc000.isp > $D/bind"
check "bus: the nodes are back" mcemu ctl status --wait 30
check "bus: a second bind fails (EBUSY)" sh -c "! echo 480bc000.isp > $D/bind 2>/dev/null"
i=0
while [ $i -lt 5 ]; do
  echo 480bc000.isp > $D/unbind && echo 480bc000.isp > $D/bind && mcemu ctl status --wait 30 >/dev/null || break
  i=$((i + 1))
done
check "bus: 5 unbind/bind cycles" test $i -eq 5
check "bus: media-ctl sees the graph after the cycles" sh -c "media-ctl -d /dev/media0 -p | grep -q 'mt9p031 1-0048'"
eventually "bus: audit after the cycles" sh -c "mcemu ctl audit --summary | grep -q '^instances=7 registered=1 unplugged=0 released=6 open_handles=0 '"
kill -TERM $pid; wait $pid
check "bus: the daemon exits cleanly and unmounts" sh -c "test $? -eq 0 && ! grep -q /run/mcemu/sys /proc/mounts"
finish
