#!/bin/sh
# The benchmarks inside the VM (see scripts/bench). Each part writes /tmp/bench/PART.json; the
# whole report goes to the console between MCEMU-JSON-BEGIN and MCEMU-JSON-END.
#   MCEMU_BENCH_PARTS     which parts (default: ioctl stream drain scale soak)
#   MCEMU_BENCH_SOAK      unplug/replug cycles of the soak (default 10000)
#   MCEMU_BENCH_HOSTILE   of the soak's 8 client threads, how many are hostile (default 2)
#   MCEMU_BENCH_FRAMES    frames per 1280x720 streaming run (default 300)
set -eu
parts=${MCEMU_BENCH_PARTS:-ioctl stream drain scale soak}
mkdir -p /tmp/bench
want() { case " $parts " in *" $1 "*) return 0 ;; esac; return 1; }
json_of() { sed -n 's/^JSON //p' "$1"; }

# vivid, the in-kernel reference, before mcemu: its /dev/media0 and /dev/video40 are taken first.
VIVID=""; VIVID_MEDIA=""
if [ -x /lib/modules/media/load ] &&
  /lib/modules/media/load n_devs=1 node_types=0x1 vid_cap_nr=40 num_inputs=1 input_types=0 > /tmp/vivid.log 2>&1; then
  i=0; while [ ! -e /dev/video40 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  [ -e /dev/video40 ] && VIVID=/dev/video40
  [ -e /dev/media0 ] && VIVID_MEDIA=/dev/media0
fi
[ -n "$VIVID" ] || { echo "(no vivid in this VM: the reference columns stay empty)"; cat /tmp/vivid.log 2>/dev/null || true; }

start_daemon() {
  mcemu serve --board beagleboard-xm "$@" 2>>/tmp/serve.log &
  daemon=$!
  mcemu ctl status --wait 120 > /tmp/status.json
  MEDIA=$(grep -o '"/dev/media[0-9]*"' /tmp/status.json | tail -n1 | tr -d '"')
}
stop_daemon() { kill -TERM "$daemon"; wait "$daemon" || true; }

start_daemon
if want ioctl; then
  cuse-floor cuse-floor 2>/tmp/floor.log &
  floor=$!
  cuse-floor -s cuse-floor1 2>/tmp/floor1.log &
  floor1=$!
  i=0; while { [ ! -e /dev/cuse-floor ] || [ ! -e /dev/cuse-floor1 ]; } && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  echo "== ioctl latency and throughput: mcemu against the CUSE floor (same rounds, no work) and vivid"
  ioctl-bench floor=/dev/cuse-floor floor1=/dev/cuse-floor1 \
    video="$(media-ctl -d "$MEDIA" -e 'OMAP3 ISP resizer output')" \
    subdev="$(media-ctl -d "$MEDIA" -e 'OMAP3 ISP CCDC')" media="$MEDIA" \
    ${VIVID:+vivid-video=$VIVID} ${VIVID_MEDIA:+vivid-media=$VIVID_MEDIA} \
    floor-pid=$floor mcemu-pid=$daemon json=/tmp/bench/ioctl.json
  kill $floor $floor1
fi

if want stream; then
  echo "== streaming: frames/s, drops and daemon CPU per frame"
  frames=${MCEMU_BENCH_FRAMES:-300}
  media-ctl -d "$MEDIA" -r -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]'
  media-ctl -d "$MEDIA" -V '"mt9p031 1-0048":0[SGRBG12 1280x720], "OMAP3 ISP CCDC":2[SGRBG10 1280x720], "OMAP3 ISP preview":1[UYVY 1280x720], "OMAP3 ISP resizer":1[UYVY 1280x720]'
  RSZ=$(media-ctl -d "$MEDIA" -e 'OMAP3 ISP resizer output')
  : > /tmp/stream.txt
  bench-client stream "$RSZ" userptr 1280x720 UYVY "$frames" "$daemon" | tee -a /tmp/stream.txt
  LD_PRELOAD=/usr/local/lib/libmcemu_preload.so bench-client stream "$RSZ" mmap 1280x720 UYVY "$frames" "$daemon" | tee -a /tmp/stream.txt
  # Full sensor size: the raw path, sensor -> CCDC -> memory, 2592x1944 Bayer.
  media-ctl -d "$MEDIA" -r -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":1->"OMAP3 ISP CCDC output":0[1]'
  media-ctl -d "$MEDIA" -V '"mt9p031 1-0048":0[SGRBG12 2592x1944]'
  CCDC_OUT=$(media-ctl -d "$MEDIA" -e 'OMAP3 ISP CCDC output')
  full=$((frames / 10))
  bench-client stream "$CCDC_OUT" userptr 2592x1944 BA12 "$full" "$daemon" | tee -a /tmp/stream.txt
  LD_PRELOAD=/usr/local/lib/libmcemu_preload.so bench-client stream "$CCDC_OUT" mmap 2592x1944 BA12 "$full" "$daemon" | tee -a /tmp/stream.txt
  if [ -n "$VIVID" ]; then
    # The reference: vivid's webcam input at the same size (its CPU shows as no daemon's: 0).
    bench-client stream "$VIVID" mmap 1280x720 UYVY "$frames" 0 | tee -a /tmp/stream.txt
  fi
  { echo '['; json_of /tmp/stream.txt | sed '$!s/$/,/'; echo ']'; } > /tmp/bench/stream.json
fi

if want drain; then
  echo "== unplug drain: 32 clients (ioctl loops, blocked DQBUF, poll)"
  bench-client drain 5 | tee /tmp/drain.txt
  # The daemon's side: how long unplug took to answer every blocked caller (woken_ms) and in all.
  woken=$(grep -a 'woken_ms=' /tmp/serve.log | tail -n 5 | sed 's/.* ms=\([0-9.]*\) woken_ms=\([0-9.]*\).*/\2/' | tr '\n' ' ')
  echo "  the daemon answered every blocked caller after (ms, per round): $woken"
  json_of /tmp/drain.txt | sed "s/}\$/,\"daemon_woken_ms\":[$(echo $woken | tr ' ' ',')]}/" > /tmp/bench/drain.json
fi
stop_daemon

if want scale; then
  echo "== scale: instances in one daemon"
  bench-client scale 1 16 64 | tee /tmp/scale.txt
  json_of /tmp/scale.txt > /tmp/bench/scale.json
fi

if want soak; then
  cycles=${MCEMU_BENCH_SOAK:-10000}
  hostile=${MCEMU_BENCH_HOSTILE:-2}
  echo "== soak: $cycles unplug/replug cycles, $((8 - hostile)) well-behaved and $hostile hostile client threads"
  start_daemon
  bench-client soak "$cycles" $((8 - hostile)) "$hostile" "$daemon" | tee /tmp/soak.txt
  json_of /tmp/soak.txt > /tmp/bench/soak.json
  stop_daemon
fi

echo MCEMU-JSON-BEGIN
echo '{'
sep=""
for p in ioctl stream drain scale soak; do
  [ -s /tmp/bench/$p.json ] || continue
  printf '%s"%s": ' "$sep" "$p"; cat /tmp/bench/$p.json
  sep=","
done
echo '}'
echo MCEMU-JSON-END
