#!/bin/sh
# VM suite: hostile clients (issue 8). Every ioctl number on every node with NULL, unmapped,
# guarded, kernel-range and non-canonical pointers, absurd (all-ones) arguments, bad pointers
# inside arguments, mis-sized and unknown numbers, read/write to bad buffers (hostile-client
# storm; the answers it allows are in tests/src/abuse.rs): only errnos, every node still
# serving, the configuration a well-behaved client set unchanged; bad USERPTR buffers; then the
# storms while a well-behaved client streams, and through unplug and replug.
set -u
. "$(dirname "$0")/lib.sh"

mcemu serve 2>>/tmp/serve.log & PID=$!
mcemu ctl status --wait 30 >/dev/null || not_ok "daemon ready"
all_nodes() { mcemu ctl status | tr ',' '\n' | sed -n 's/.*"path": *"\([^"]*\)".*/\1/p' | sort -u; }
audit() { mcemu ctl audit --summary; }
# storm_ok NAME LOG RC: the storm's verdict, with its violations when there were any.
storm_ok() {
  grep '^storm:' "$2" | sed 's/^/    # /'
  if [ "$3" -eq 0 ] && grep -q '^storm: .* 0 violations' "$2"; then ok "$1"; else not_ok "$1" "$(head -n 30 "$2")"; fi
}
pipeline() {
  media-ctl -r -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]' &&
  media-ctl -V '"mt9p031 1-0048":0[SGRBG12 640x480], "OMAP3 ISP CCDC":2[SGRBG10 640x480], "OMAP3 ISP preview":1[UYVY 640x480], "OMAP3 ISP resizer":1[UYVY 320x240]'
}
# What a well-behaved client configured: links, formats, and the sensor's controls.
snapshot() { media-ctl -p 2>&1; v4l2-ctl -d "$SENSOR" --list-ctrls 2>&1; }

NODES=$(all_nodes)
SENSOR=$(media-ctl -e "mt9p031 1-0048")
RSZ=$(media-ctl -e "OMAP3 ISP resizer output")
LIVE0=$(audit | sed -n 's/.* live_objects=\([0-9]*\).*/\1/p')
check "setup: a well-behaved client links and formats the pipeline" pipeline
check "setup: and sets the sensor's gain" v4l2-ctl -d "$SENSOR" --set-ctrl=gain=20
snapshot > /tmp/before.txt

# 1. Every node, idle.
hostile-client storm $NODES > /tmp/storm1.txt 2>&1
storm_ok "storm on $(echo $NODES | wc -w) nodes: only the answers the kernel gives" /tmp/storm1.txt $?
for n in $NODES; do
  case $n in
    */media*) check "still serving: $n" media-ctl -d "$n" -p ;;
    *) check "still serving: $n" v4l2-ctl -d "$n" --info ;;
  esac
done
snapshot > /tmp/after.txt
if cmp -s /tmp/before.txt /tmp/after.txt; then ok "links, formats and controls as the well-behaved client left them"
else not_ok "links, formats and controls changed" "$(diff /tmp/before.txt /tmp/after.txt | head -n 20)"; fi
check "handles: all released" sh -c "audit() { mcemu ctl audit --summary; }; audit | grep -q ' open_handles=0 '"

# USERPTR buffers a client must not get away with, then frames into good ones.
hostile-client userptr "$RSZ" > /tmp/userptr.txt 2>&1
fold_results hostile /tmp/userptr.txt
check "userptr: the queue is free again" sh -c "mcemu ctl audit --summary | grep -q ' open_handles=0 '"

# 2. While a well-behaved client streams 60 frames, storms on every node (the capture node
# included) in two processes.
v4l2-ctl -d "$RSZ" --set-fmt-video width=320,height=240,pixelformat=UYVY --stream-user --stream-count=60 --verbose > /tmp/cap.txt 2>&1 &
APP=$!
hostile-client storm-loop 3600 $NODES > /tmp/storm2a.txt 2>&1 & S1=$!
hostile-client storm-loop 3600 $NODES > /tmp/storm2b.txt 2>&1 & S2=$!
wait $APP; caprc=$?

kill -TERM $S1 $S2 2>/dev/null; wait $S1; r1=$?; wait $S2; r2=$?
if [ $caprc -eq 0 ] && [ "$(grep -c 'cap dqbuf' /tmp/cap.txt)" -eq 60 ]; then ok "streaming: all 60 frames reached the well-behaved client"
else not_ok "streaming: the well-behaved client" "exit $caprc, $(grep -c 'cap dqbuf' /tmp/cap.txt) frames; $(tail -n 5 /tmp/cap.txt)"; fi
storm_ok "streaming: storm 1 on every node" /tmp/storm2a.txt $r1
storm_ok "streaming: storm 2 on every node" /tmp/storm2b.txt $r2
snapshot > /tmp/after.txt
if cmp -s /tmp/before.txt /tmp/after.txt; then ok "streaming: links, formats and controls unchanged"
else not_ok "streaming: links, formats and controls changed" "$(diff /tmp/before.txt /tmp/after.txt | head -n 20)"; fi

# 3. Through unplug and replug: storms on the newest instance's nodes (read again every pass)
# while the instance is unplugged and replugged 5 times, a client streaming when the first
# unplug comes (it must end, not hang), and a well-behaved client listing the graph after each
# replug.
v4l2-ctl -d "$RSZ" --set-fmt-video width=320,height=240,pixelformat=UYVY --stream-user --stream-count=100000 --verbose > /tmp/cap3.txt 2>&1 &
APP=$!
hostile-client storm-loop 3600 newest > /tmp/storm3a.txt 2>&1 & S1=$!
hostile-client storm-loop 3600 newest > /tmp/storm3b.txt 2>&1 & S2=$!
sleep 1
i=0; cycles_ok=0
while [ $i -lt 5 ]; do
  i=$((i + 1))
  sleep 0.5
  mcemu ctl unplug > /dev/null || break
  sleep 0.3
  mcemu ctl replug > /dev/null && mcemu ctl status --wait 30 > /dev/null || break
  media-ctl -p > /dev/null 2>&1 && cycles_ok=$((cycles_ok + 1))
done
sleep 1
kill -TERM $S1 $S2 2>/dev/null; wait $S1; r1=$?; wait $S2; r2=$?
i=0; while kill -0 $APP 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $APP 2>/dev/null; then kill -9 $APP; not_ok "unplug: the streaming client still runs after the unplugs" "$(tail -n 3 /tmp/cap3.txt)"
else
  n=$(grep -c 'cap dqbuf' /tmp/cap3.txt)
  if [ "$n" -gt 0 ]; then ok "unplug: the streaming client ended after $n frames (its stream was unplugged)"
  else not_ok "unplug: the streaming client got no frame before the unplug" "$(tail -n 3 /tmp/cap3.txt)"; fi
fi
if [ $cycles_ok -eq 5 ]; then ok "unplug: 5 cycles, media-ctl -p answered after each replug"; else not_ok "unplug: $cycles_ok of 5 cycles"; fi
storm_ok "unplug: storm 1 on the newest nodes" /tmp/storm3a.txt $r1
storm_ok "unplug: storm 2 on the newest nodes" /tmp/storm3b.txt $r2
cut=$(sed -n 's/^storm: .*violations, \([0-9]*\) cut short.*/\1/p' /tmp/storm3a.txt /tmp/storm3b.txt | awk '{s+=$1} END {print s+0}')
if [ "$cut" -gt 0 ]; then ok "unplug: storms were under way at unplug ($cut passes cut short)"; else not_ok "unplug: no storm pass met an unplug"; fi
eventually "unplug: every unplugged instance released, no handle open, no use after free" sh -c "mcemu ctl audit --summary | grep -q '^instances=6 registered=1 unplugged=0 released=5 open_handles=0 live_objects=$LIVE0 uaf_events=0\$'"
for n in $(all_nodes); do
  case $n in
    */media*) check "replugged, serving: $n" media-ctl -d "$n" -p ;;
    *) check "replugged, serving: $n" v4l2-ctl -d "$n" --info ;;
  esac
done
kill -TERM $PID; wait $PID
check "daemon: exits cleanly after the storms" test $? -eq 0
finish
