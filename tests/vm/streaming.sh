#!/bin/sh
# VM suite: frames through the simulated ISP, captured by unmodified clients (yavta, v4l2-ctl,
# GStreamer, v4l2-compliance) with USERPTR buffers and, through the preload shim, MMAP buffers,
# along the documented pipelines of both boards.
set -u
. "$(dirname "$0")/lib.sh"

start() { mcemu serve "$@" 2>/tmp/serve.log & SERVE=$!; mcemu ctl status --wait 30 >/dev/null; }
stop() { kill -TERM "$SERVE" 2>/dev/null; wait "$SERVE"; }
# size ENTITY PAD: the pad's active WIDTHxHEIGHT as media-ctl reports it.
size() { media-ctl --get-v4l2 "\"$1\":$2" | sed -n 's/.*fmt:[^/]*\/\([0-9]*x[0-9]*\).*/\1/p'; }
# frame_md5 FILE SIZE N: the md5 of frame N of a raw capture.
frame_md5() { dd if="$1" bs="$2" skip="$3" count=1 2>/dev/null | md5sum | cut -d' ' -f1; }

start --board beagleboard-xm
RSZ=$(media-ctl -e "OMAP3 ISP resizer output")
CCDC_OUT=$(media-ctl -e "OMAP3 ISP CCDC output")
CCDC_SD=$(media-ctl -e "OMAP3 ISP CCDC")
check "recipe: media-ctl -r -l sensor -> CCDC -> preview -> resizer -> memory" media-ctl -r -l \
  '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]'
check "recipe: media-ctl -V SGRBG12 1280x720 at the sensor" media-ctl -V \
  '"mt9p031 1-0048":0[SGRBG12 1280x720], "OMAP3 ISP CCDC":2[SGRBG10 1280x720], "OMAP3 ISP preview":1[UYVY 1280x720], "OMAP3 ISP resizer":1[UYVY 1280x720]'
WH=$(size "OMAP3 ISP resizer" 1)
W=${WH%x*}; H=${WH#*x}
check "recipe: the resizer output is 1280x720" test "$WH" = 1280x720
SIZE=$((W * H * 2))

# Without S_FMT on the streaming handle, STREAMON fails: the classic omap3isp EINVAL.
v4l2-ctl -d "$RSZ" --stream-user --stream-count=1 > /tmp/nofmt.txt 2>&1
contains "STREAMON without S_FMT on that handle is EINVAL" /tmp/nofmt.txt "VIDIOC_STREAMON returned -1 (Invalid argument)"

yavta -c30 -u -f UYVY -s "$WH" "$RSZ" > /tmp/yavta.txt 2>&1
contains "yavta -u captures 30 frames" /tmp/yavta.txt "Captured 30 frames"
contains "yavta: buffers of the size media-ctl reports" /tmp/yavta.txt "$SIZE B"
contains "yavta: monotonic end-of-frame timestamps" /tmp/yavta.txt "ts mono/EoF"

v4l2-ctl -d "$RSZ" --set-fmt-video width="$W",height="$H",pixelformat=UYVY --stream-user \
  --stream-count=30 --stream-to=/tmp/f.raw > /tmp/v4l2ctl.txt 2>&1
check "v4l2-ctl --stream-user writes 30 frames of ${WH} UYVY" test "$(wc -c < /tmp/f.raw)" -eq $((30 * SIZE))
check "the frames change (first and last differ)" test "$(frame_md5 /tmp/f.raw $SIZE 0)" != "$(frame_md5 /tmp/f.raw $SIZE 29)"
check "a frame is not blank" sh -c "dd if=/tmp/f.raw bs=$SIZE count=1 2>/dev/null | od -An -tu1 -v | tr -s ' ' '\n' | sort -un | wc -l | awk '{exit !(\$1 > 50)}'"
check "luma stays in the limited range 16..235" sh -c \
  "dd if=/tmp/f.raw bs=2 count=$((W * 8)) 2>/dev/null | od -An -tu1 -v -w2 | awk '{ if (\$2 < 16 || \$2 > 235) bad=1 } END { exit bad }'"

# GStreamer's USERPTR mode imports buffers from a downstream pool; fakesink has none, so
# videoconvert (which proposes one) sits in between.
gst-launch-1.0 -q v4l2src device="$RSZ" io-mode=userptr num-buffers=30 ! videoconvert ! \
  video/x-raw,format=I420 ! fakesink > /tmp/gst.txt 2>&1
check "GStreamer v4l2src io-mode=userptr runs 30 frames" test $? -eq 0

# MMAP, the default I/O of these tools: without the preload shim mmap() fails as on any CUSE
# node; with it, the daemon's buffers are mapped.
SHIM=/usr/local/lib/libmcemu_preload.so
yavta -c3 -f UYVY -s "$WH" "$RSZ" > /tmp/noshim.txt 2>&1
contains "MMAP without the shim: mmap() is ENODEV" /tmp/noshim.txt "Unable to map buffer 0/0: No such device (19)"
LD_PRELOAD=$SHIM v4l2-ctl -d "$RSZ" --set-fmt-video width="$W",height="$H",pixelformat=UYVY --stream-mmap \
  --stream-count=30 --stream-to=/tmp/mmap.raw > /tmp/mmap.txt 2>&1
check "shim: v4l2-ctl --stream-mmap writes 30 frames of ${WH}" test "$(wc -c < /tmp/mmap.raw)" -eq $((30 * SIZE))
check "shim: the mapped frames change" test "$(frame_md5 /tmp/mmap.raw $SIZE 0)" != "$(frame_md5 /tmp/mmap.raw $SIZE 29)"
check "shim: a mapped frame is not blank" sh -c "dd if=/tmp/mmap.raw bs=$SIZE count=1 2>/dev/null | od -An -tu1 -v | tr -s ' ' '\n' | sort -un | wc -l | awk '{exit !(\$1 > 50)}'"
LD_PRELOAD=$SHIM yavta -c30 -f UYVY -s "$WH" "$RSZ" > /tmp/yavta-mmap.txt 2>&1
contains "shim: yavta (MMAP) captures 30 frames" /tmp/yavta-mmap.txt "Captured 30 frames"
LD_PRELOAD=$SHIM gst-launch-1.0 -q v4l2src device="$RSZ" num-buffers=30 ! fakesink > /tmp/gst-mmap.txt 2>&1
check "shim: GStreamer v4l2src (default io-mode) ! fakesink runs 30 frames" test $? -eq 0
# v4l2-compliance's streaming tests on the configured capture node (720x480, the size a new
# handle starts with, so the tests' G_FMT/TRY_FMT agree as on the real driver).
media-ctl -V '"OMAP3 ISP resizer":1[UYVY 720x480]'
LD_PRELOAD=$SHIM v4l2-compliance -C never -d "$RSZ" -s 10 > /tmp/compliance-s.txt 2>&1
for t in "test MMAP (no poll): OK" "test MMAP (select): OK" "test MMAP (epoll): OK" \
         "test USERPTR (no poll): OK" "test USERPTR (select): OK" "test blocking wait: OK"; do
  contains "v4l2-compliance -s: $t" /tmp/compliance-s.txt "$t"
done
# (Warnings: sequence gaps where TCG renders slower than the sensor runs.)
check "v4l2-compliance -s fails only the per-handle REQBUFS test" grep -qE \
  "^Total for ispvideo device $RSZ: 54, Succeeded: 53, Failed: 1, Warnings: [0-9]+$" /tmp/compliance-s.txt
contains "... which is VIDIOC_REQBUFS/CREATE_BUFS/QUERYBUF" /tmp/compliance-s.txt "test VIDIOC_REQBUFS/CREATE_BUFS/QUERYBUF: FAIL"
media-ctl -V '"OMAP3 ISP resizer":1[UYVY 1280x720]'

# Streaming pins the pipeline: its links cannot change, the CCDC signals each frame start.
v4l2-ctl -d "$RSZ" --set-fmt-video width="$W",height="$H",pixelformat=UYVY --stream-user \
  --stream-count=100000 > /dev/null 2>&1 &
STREAM=$!
sleep 2
media-ctl -l '"OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[0]' > /tmp/busy.txt 2>&1
check "a link in a streaming pipeline cannot change (EBUSY)" grep -q "(16)" /tmp/busy.txt
timeout 10 v4l2-ctl -d "$CCDC_SD" --wait-for-event=frame_sync > /tmp/fs.txt 2>&1
contains "the CCDC sends FRAME_SYNC events while streaming" /tmp/fs.txt "frame_sync"
isp-stat-client streaming "$(media-ctl -e "OMAP3 ISP AEWB")" "$(media-ctl -e "OMAP3 ISP histogram")" > /tmp/stat.log 2>&1
fold_results "statistics while streaming" /tmp/stat.log
isp-stat-client cfg "$CCDC_SD" "$(media-ctl -e "OMAP3 ISP preview")" streaming > /tmp/cfg.log 2>&1
fold_results "CCDC and preview configuration while streaming" /tmp/cfg.log
kill "$STREAM"; wait "$STREAM" 2>/dev/null
# Fault injection into the pipeline: a stuck pipeline shows as a long gap between frames. The
# stall is injected once frames flow, and the capture stopped once frames flow again.
frames_in() { grep -c 'cap dqbuf' /tmp/stall.txt 2>/dev/null || true; }
wait_frames() { i=0; while [ "$(frames_in)" -lt "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done; }
v4l2-ctl -d "$RSZ" --set-fmt-video width="$W",height="$H",pixelformat=UYVY --stream-user \
  --stream-count=100000 --verbose > /tmp/stall.txt 2>&1 &
STREAM=$!
wait_frames 3
check "ctl inject --stall-ms on the capture node" mcemu ctl inject --node "$RSZ" --stall-ms 3000
check "ctl inject --drop-frames on the capture node" mcemu ctl inject --node "$RSZ" --drop-frames 2
wait_frames $(( $(frames_in) + 3 ))
kill "$STREAM"; wait "$STREAM" 2>/dev/null
check "the stall shows as a gap of 3 s between two frames" sh -c \
  "grep -o 'delta: [0-9.]* ms' /tmp/stall.txt | awk '{ if (\$2 >= 2900) found=1 } END { exit !found }'"
check "frame faults need a video node" sh -c \
  "mcemu ctl inject --node $CCDC_SD --drop-frames 1 2>&1 | grep -q 'not a video node'"
check "ctl inject without --ioctl, --drop-frames or --stall-ms is refused" sh -c \
  "! mcemu ctl inject --node $RSZ 2>/dev/null"
check "after STREAMOFF (close) the link can change again" media-ctl -l '"OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[0]'

# The raw path: sensor -> CCDC -> CCDC output, Bayer in 16-bit containers.
check "raw: media-ctl -r -l sensor -> CCDC -> memory" media-ctl -r -l \
  '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":1->"OMAP3 ISP CCDC output":0[1]'
check "raw: media-ctl -V SGRBG12 640x480" media-ctl -V '"mt9p031 1-0048":0[SGRBG12 640x480]'
RWH=$(size "OMAP3 ISP CCDC" 1)
RW=${RWH%x*}; RH=${RWH#*x}
v4l2-ctl -d "$CCDC_OUT" --set-fmt-video width="$RW",height="$RH",pixelformat=BA12 --stream-user \
  --stream-count=5 --stream-to=/tmp/raw.raw > /tmp/raw.txt 2>&1
check "raw: 5 Bayer frames of $RWH in 16-bit containers" test "$(wc -c < /tmp/raw.raw)" -eq $((5 * RW * RH * 2))
check "raw: samples are 12-bit" sh -c \
  "dd if=/tmp/raw.raw bs=2 count=4096 2>/dev/null | od -An -tu2 -v | tr -s ' ' '\n' | awk 'NF { if (\$1 > 4095) bad=1; if (\$1 > 1023) big=1 } END { exit bad || !big }'"

# Memory to memory: frames a client writes into the resizer input come back scaled.
RIN=$(media-ctl -e "OMAP3 ISP resizer input")
check "m2m: media-ctl -r -l resizer input -> resizer -> resizer output" media-ctl -r -l \
  '"OMAP3 ISP resizer input":0->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]'
check "m2m: media-ctl -V 640x480 -> 320x240" media-ctl -V '"OMAP3 ISP resizer":0[UYVY 640x480], "OMAP3 ISP resizer":1[UYVY 320x240]'
# Five frames, each a solid grey of its own level.
for level in 040 100 140 200 300; do
  dd if=/dev/zero bs=614400 count=1 2>/dev/null | tr '\000' "\\$level"
done > /tmp/in.raw
# The output side loops over the file until the capture side has its five frames.
v4l2-ctl -d "$RIN" --set-fmt-video-out width=640,height=480,pixelformat=UYVY --stream-out-user \
  --stream-loop --stream-count=1000 --stream-from=/tmp/in.raw > /tmp/m2m-in.txt 2>&1 &
IN=$!
timeout 60 v4l2-ctl -d "$RSZ" --set-fmt-video width=320,height=240,pixelformat=UYVY --stream-user \
  --stream-count=5 --stream-to=/tmp/out.raw > /tmp/m2m-out.txt 2>&1
kill $IN 2>/dev/null; wait $IN 2>/dev/null
check "m2m: 5 frames of 320x240 come out" test "$(wc -c < /tmp/out.raw)" -eq $((5 * 320 * 240 * 2))
check "m2m: each output frame is its input's grey" sh -c \
  'for i in 0 1 2 3 4; do dd if=/tmp/out.raw bs=153600 skip=$i count=1 2>/dev/null | od -An -tu1 -v | tr -s " " "\n" | sort -u | grep -v "^$"; done | tr "\n" " " | grep -qx "32 64 96 128 192 "'
stop

start --board n900
check "n900: media-ctl -r -l et8ek8 -> CCP2 -> CCDC -> memory" media-ctl -r -l \
  '"et8ek8 3-003e":0->"OMAP3 ISP CCP2":0[1], "OMAP3 ISP CCP2":1->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":1->"OMAP3 ISP CCDC output":0[1]'
check "n900: media-ctl -V SGRBG10 864x656 along the CCP2 path" media-ctl -V \
  '"et8ek8 3-003e":0[SGRBG10 864x656], "OMAP3 ISP CCP2":1[SGRBG10 864x656]'
NWH=$(size "OMAP3 ISP CCDC" 1)
NW=${NWH%x*}; NH=${NWH#*x}
N900_OUT=$(media-ctl -e "OMAP3 ISP CCDC output")
v4l2-ctl -d "$N900_OUT" --set-fmt-video width="$NW",height="$NH",pixelformat=BA10 --stream-user \
  --stream-count=5 --stream-to=/tmp/n900.raw > /tmp/n900.txt 2>&1
check "n900: 5 frames of $NWH SGRBG10 through the CCP2" test "$(wc -c < /tmp/n900.raw)" -eq $((5 * NW * NH * 2))
stop

finish
