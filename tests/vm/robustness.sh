#!/bin/sh
# VM suite: clients and the daemon killed at awkward moments. A client SIGKILLed while parked
# in an ioctl, blocked in DQBUF or in poll leaves nothing behind (its handles are released, the
# queue is free for the next client); a daemon SIGKILLed mid-stream leaves clients with errors,
# never hanging, and a restarted daemon comes up in its place.
set -u
. "$(dirname "$0")/lib.sh"

serve() { mcemu serve "$@" 2>>/tmp/serve.log & PID=$!; mcemu ctl status --wait 30 >/dev/null || not_ok "daemon ready"; }
stop() { kill -TERM $PID 2>/dev/null; wait $PID; }
gone() { ! kill -0 "$1" 2>/dev/null; }
# handles_back: no handle open on any node (the audit's open_handles).
handles_back() { mcemu ctl audit --summary | grep -q ' open_handles=0 '; }
frames_in() { grep -c 'cap dqbuf' "$1" 2>/dev/null || true; }
wait_frames() { i=0; while [ "$(frames_in "$1")" -lt "$2" ]; do [ $i -ge 600 ] && { tail -n 5 "$1"; return 1; }; sleep 0.1; i=$((i + 1)); done; }
pipeline() {
  media-ctl -r -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]' &&
  media-ctl -V '"mt9p031 1-0048":0[SGRBG12 640x480], "OMAP3 ISP CCDC":2[SGRBG10 640x480], "OMAP3 ISP preview":1[UYVY 640x480], "OMAP3 ISP resizer":1[UYVY 640x480]'
}
stream() { # LOG [COUNT]: v4l2-ctl capturing USERPTR frames from the resizer output, in the background
  v4l2-ctl -d "$RSZ" --set-fmt-video width=640,height=480,pixelformat=UYVY --stream-user \
    --stream-count="${2:-100000}" --verbose > "$1" 2>&1 &
  APP=$!
}

serve
RSZ=$(media-ctl -e "OMAP3 ISP resizer output")
CCDC_SD=$(media-ctl -e "OMAP3 ISP CCDC")
check "pipeline: sensor -> CCDC -> preview -> resizer -> memory, 640x480" pipeline

# 1. Parked in an ioctl at a race breakpoint: the kernel holds a killed caller until the
# daemon answers (FUSE waits out a request it has sent), so the process ends at `continue`,
# and its handle goes with it.
mcemu ctl break --node "$RSZ" --ioctl VIDIOC_QUERYCAP --stage entry > /dev/null
v4l2-ctl -d "$RSZ" --info > /dev/null 2>&1 &
APP=$!
check "parked: v4l2-ctl stops at the breakpoint" mcemu ctl wait-hit --timeout 20
kill -9 $APP
check "parked: other clients are served meanwhile" sh -c "v4l2-ctl -d $RSZ --info | grep -q ispvideo"
check "parked: continue" mcemu ctl continue
eventually "parked: the killed client is gone after continue" gone $APP
wait $APP 2>/dev/null
eventually "parked: its handle is released" handles_back

# 2. Blocked in DQBUF (the pipeline stalled: no frame is coming) and killed: vb2 waits
# interruptibly, so the kill ends it at once, not when frames come back.
stream /tmp/dqbuf.txt
check "DQBUF: frames flow" wait_frames /tmp/dqbuf.txt 3
mcemu ctl inject --node "$RSZ" --stall-ms 20000 > /dev/null
sleep 2
t0=$(date +%s)
kill -9 $APP
eventually "DQBUF: the client killed while blocked is gone" gone $APP
wait $APP 2>/dev/null
check "DQBUF: within a few seconds, long before the stall ends ($(( $(date +%s) - t0 )) s)" test $(( $(date +%s) - t0 )) -lt 10
eventually "DQBUF: its handles are released" handles_back
check "DQBUF: the queue is free: another client sets the format (no EBUSY)" \
  v4l2-ctl -d "$RSZ" --set-fmt-video width=640,height=480,pixelformat=UYVY
check "DQBUF: and the link can change (the pipeline stopped)" media-ctl -l '"OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[0]'
stop

# 3. In poll, waiting for an event that does not come (FRAME_SYNC of an idle CCDC), killed.
serve
hostile-client poll "$CCDC_SD" > /tmp/poll.txt 2>&1 &
APP=$!
eventually "poll: the client is waiting with its handle open" sh -c "mcemu ctl audit --summary | grep -q ' open_handles=1 '"
kill -9 $APP
eventually "poll: the killed client is gone" gone $APP
wait $APP 2>/dev/null
eventually "poll: its handle is released" handles_back
check "poll: the node still answers" sh -c "v4l2-ctl -d $CCDC_SD --all > /dev/null"

# 4. The daemon SIGKILLed mid-stream: the client gets an error and ends (never hangs), nodes go.
RSZ=$(media-ctl -e "OMAP3 ISP resizer output")
check "daemon kill: pipeline" pipeline
stream /tmp/dkill.txt
check "daemon kill: frames flow" wait_frames /tmp/dkill.txt 3
kill -9 $PID
wait $PID 2>/dev/null
eventually "daemon kill: the streaming client ends" gone $APP
wait $APP
# v4l2-ctl reports the failed call ("do_handle_cap: qbuf error") and exits, with status 0.
if grep -qiE "error|failed|returned -1" /tmp/dkill.txt; then ok "daemon kill: the client saw its ioctl fail"; else not_ok "daemon kill: the client saw its ioctl fail" "$(grep -v '^[[:space:]]' /tmp/dkill.txt | grep -v 'cap dqbuf' | tail -n 8)"; fi
eventually "daemon kill: the nodes leave /dev" sh -c "! ls /dev/media0 /dev/video0 /dev/v4l-subdev0 2>/dev/null | grep -q ."

# 5. A restarted daemon finds the stale control socket and the dead bind/unbind mount, and
# comes up in their place with the same node names.
serve --bus-root /tmp/bus
check "restart: a daemon with the bind/unbind files" test -e /tmp/bus/bus/platform/drivers/omap3isp/unbind
kill -9 $PID; wait $PID 2>/dev/null
check "restart: the killed daemon left its control socket behind" test -S /run/mcemu/control.sock
serve --bus-root /tmp/bus
check "restart: the new daemon answers" mcemu ctl status --wait 30
check "restart: the same names (/dev/media0)" test -e /dev/media0
check "restart: the bind/unbind files work again" sh -c "echo 480bc000.isp > /tmp/bus/bus/platform/drivers/omap3isp/unbind && echo 480bc000.isp > /tmp/bus/bus/platform/drivers/omap3isp/bind"
check "restart: the replugged instance answers" mcemu ctl status --wait 30
stop
check "restart: a clean stop unmounts the bind/unbind files" sh -c "! grep -q ' /tmp/bus ' /proc/mounts"

# 6. Caps on what one client process holds, with the kernel's errno for each and a log line.
# (media-ctl -V holds a handle on every sub-device at once: 20 leaves room for it.)
serve --max-handles 20 --max-buffer-mib 1 --max-parked 3
hostile-client open-many /dev/media0 25 > /tmp/open-many.txt 2>&1
contains "limits: a process's 21st handle is refused with EMFILE (--max-handles 20)" /tmp/open-many.txt "open-many: opened 20, then EMFILE"
check "limits: the daemon logs it" grep -q "most handles it may (--max-handles): open fails with EMFILE" /tmp/serve.log
check "limits: the handles went with the process (a new one opens)" sh -c "v4l2-ctl -d /dev/media0 -D > /dev/null 2>&1 || media-ctl -d /dev/media0 -p > /dev/null"
RSZ=$(media-ctl -e "OMAP3 ISP resizer output")
check "limits: pipeline (a capture node's format is its source's: 640x480 UYVY)" pipeline
hostile-client reqbufs "$RSZ" 4 4 > /tmp/reqbufs.txt 2>&1
contains "limits: MMAP REQBUFS 4 x 600 KiB under a 1 MiB cap gives 1 buffer" /tmp/reqbufs.txt "reqbufs: 614400 bytes each: asked 4, got 1"
contains "limits: a second queue of the same process gets ENOMEM" /tmp/reqbufs.txt "reqbufs: 614400 bytes each: asked 4, ENOMEM"
check "limits: the daemon logs it" grep -q "memory cap (--max-buffer-mib)" /tmp/serve.log
CCDC_SD=$(media-ctl -e "OMAP3 ISP CCDC")
hostile-client dqevent-many "$CCDC_SD" 5 > /tmp/dqevent-many.txt 2>&1
contains "limits: of 5 blocking DQEVENTs, 3 wait and 2 get EBUSY (--max-parked 3)" /tmp/dqevent-many.txt "dqevent-many: 3 waiting, 2 failed: [EBUSY, EBUSY]"
check "limits: the daemon logs it" grep -q "most calls waiting it may (--max-parked)" /tmp/serve.log
eventually "limits: nothing is held after the clients ended" sh -c "mcemu ctl status | grep -q '\"processes\": \[\]'"
stop
check "limits: a zero cap is refused with a message" sh -c "mcemu serve --max-handles 0 2>&1 | grep -q 'max-handles'"

finish
