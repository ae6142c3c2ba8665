#!/bin/sh
# VM suite: many instances in one daemon (issue 9). 64 BeagleBoard-xM instances start and each
# media device answers media-ctl -p; one instance is unplugged and replugged while another
# streams, and nothing else notices.
set -u
. "$(dirname "$0")/lib.sh"

# media_of ID: the media node of instance ID (from ctl status).
media_of() {
  mcemu ctl status | awk -v want="$1" '
    /"id":/ { v = $2; gsub(/[^0-9]/, "", v); id = v }
    /"path": "\/dev\/media/ && id == want { v = $2; gsub(/[",]/, "", v); print v; exit }'
}
answering() { n=0; for m in /dev/media*; do media-ctl -d "$m" -p > /dev/null 2>&1 && n=$((n + 1)); done; echo $n; }

mcemu serve --instances 64 2>>/tmp/serve.log & PID=$!
check "64 instances: the daemon is ready" mcemu ctl status --wait 300
n=$(ls /dev/media* | wc -l)
if [ "$n" -eq 64 ]; then ok "64 instances: 64 media nodes"; else not_ok "64 instances: $n media nodes"; fi
n=$(answering)
if [ "$n" -eq 64 ]; then ok "64 instances: each media device answers media-ctl -p"; else not_ok "64 instances: $n of 64 answer media-ctl -p"; fi
n=$(ls /dev/video* /dev/v4l-subdev* | wc -l)
if [ "$n" -eq $((64 * 16)) ]; then ok "64 instances: 1,024 video and sub-device nodes"; else not_ok "64 instances: $n video and sub-device nodes"; fi

mcemu ctl status 2>/tmp/status.err | head -n 1 > /dev/null
if grep -q panicked /tmp/status.err; then not_ok "ctl status into a pipe closed early" "$(head -n 3 /tmp/status.err)"
else ok "ctl status into a pipe closed early: no panic"; fi

# Instance 10 streams while instance 5 is unplugged and replugged.
M10=$(media_of 10); M5=$(media_of 5)
check "instance 10: pipeline" sh -c "media-ctl -d $M10 -r -l '\"mt9p031 1-0048\":0->\"OMAP3 ISP CCDC\":0[1], \"OMAP3 ISP CCDC\":2->\"OMAP3 ISP preview\":0[1], \"OMAP3 ISP preview\":1->\"OMAP3 ISP resizer\":0[1], \"OMAP3 ISP resizer\":1->\"OMAP3 ISP resizer output\":0[1]' && media-ctl -d $M10 -V '\"mt9p031 1-0048\":0[SGRBG12 640x480], \"OMAP3 ISP CCDC\":2[SGRBG10 640x480], \"OMAP3 ISP preview\":1[UYVY 640x480], \"OMAP3 ISP resizer\":1[UYVY 320x240]'"
RSZ=$(media-ctl -d "$M10" -e "OMAP3 ISP resizer output")
v4l2-ctl -d "$RSZ" --set-fmt-video width=320,height=240,pixelformat=UYVY --stream-user --stream-count=40 --verbose > /tmp/cap10.txt 2>&1 &
APP=$!
sleep 1
check "instance 5: unplug" mcemu ctl unplug --instance 5
if [ -e "$M5" ]; then not_ok "instance 5: $M5 left /dev"; else ok "instance 5: $M5 left /dev"; fi
n=$(answering)
if [ "$n" -eq 63 ]; then ok "unplugged 5: the 63 others answer media-ctl -p"; else not_ok "unplugged 5: $n answer"; fi
check "instance 5: replug" mcemu ctl replug --instance 5
check "replugged: ready" mcemu ctl status --wait 60
n=$(answering)
if [ "$n" -eq 64 ]; then ok "replugged: 64 media devices answer media-ctl -p"; else not_ok "replugged: $n of 64 answer"; fi
wait $APP; rc=$?
f=$(grep -c 'cap dqbuf' /tmp/cap10.txt)
if [ $rc -eq 0 ] && [ "$f" -eq 40 ]; then ok "instance 10: all 40 frames while 5 was unplugged and replugged"
else not_ok "instance 10: exit $rc, $f frames" "$(tail -n 3 /tmp/cap10.txt)"; fi
eventually "audit: 65 instance records, 64 registered, 1 released, no handle open" sh -c "mcemu ctl audit --summary | grep -q '^instances=65 registered=64 unplugged=0 released=1 open_handles=0 '"
kill -TERM $PID; wait $PID
check "daemon: exits cleanly with 64 instances" test $? -eq 0
n=$(ls /dev/media* 2>/dev/null | wc -l)
if [ "$n" -eq 0 ]; then ok "daemon gone: no media node left"; else not_ok "daemon gone: $n media nodes left"; fi
finish
