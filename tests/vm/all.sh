#!/bin/sh
# Runs every VM suite in one boot; exits non-zero if any failed.
set -u
dir=$(dirname "$0")
rc=0
total_p=0
total_f=0
for suite in cuse mcemu streaming hotplug lifetime security robustness hostile instances topology allocator; do
  echo "== suite: $suite"
  sh "$dir/$suite.sh" > "/tmp/suite-$suite.log" 2>&1
  src=$?
  cat "/tmp/suite-$suite.log"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "/tmp/suite-$suite.log" | tail -n1)
  p=$(echo "$line" | cut -d' ' -f1); f=$(echo "$line" | cut -d' ' -f3)
  [ -n "$p" ] || { p=0; f=1; echo "not ok - suite $suite printed no summary"; }
  total_p=$((total_p + p)); total_f=$((total_f + f))
  [ "$src" -eq 0 ] || rc=1
done
echo "vm: $total_p passed, $total_f failed"
[ "$total_f" -eq 0 ] || rc=1
exit $rc
