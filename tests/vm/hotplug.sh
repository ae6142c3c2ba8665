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
  hotplug-client "$@" > /tmp/client-$name.log 2>&1
  sed "s/^\(not \)\{0,1\}ok - /&$name: /" /tmp/client-$name.log | grep -v "passed, .* failed$"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' /tmp/client-$name.log | tail -n1)
  if [ -n "$line" ]; then
    PASSED=$((PASSED + ${line%% *}))
    FAILED=$((FAILED + $(echo "$line" | cut -d' ' -f3)))
  else
    not_ok "$name: the client ended without a summary" "$(tail -n 20 /tmp/client-$name.log)"
  fi
  kill -TERM $pid; wait $pid
  check "$name: daemon exits cleanly after the scenario" test $? -eq 0
}

for profile in mainline enodev strict; do
  SERVE_ARGS="--errno-profile $profile" run_client "errnos-$profile" errnos $profile
done
SERVE_ARGS="" run_client selftests selftests 10
SERVE_ARGS="--board n900" run_client stress stress 30 4
finish
