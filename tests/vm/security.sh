#!/bin/sh
# VM suite: who may use the daemon. Device nodes root:video 0660 (configurable), clients of
# another user in group video stream through them (USERPTR: the daemon reaches their memory
# with the capabilities it kept), others are refused; the control socket answers root only;
# after setup the daemon holds CAP_CHOWN and CAP_SYS_PTRACE and nothing else.
set -u
. "$(dirname "$0")/lib.sh"

NOBODY=65534
VIDEO=44
start() { mcemu serve "$@" 2>/tmp/serve.log & SERVE=$!; mcemu ctl status --wait 30 > /tmp/status.json; }
stop() { kill -TERM "$SERVE" 2>/dev/null; wait "$SERVE"; }
nodes() { grep -o '"/dev/[a-z4l-]*[0-9]*"' /tmp/status.json | tr -d '"'; }
# modes: every node of the newest instance as "uid:gid mode", one distinct line per setting.
modes() { mcemu ctl status > /tmp/status.json; for n in $(nodes); do [ -e "$n" ] && stat -c '%u:%g %a' "$n"; done | sort -u; }
# cap FIELD MASK: /proc/PID/status shows the capability set FIELD as MASK.
cap() { grep -qE "^$1:[[:space:]]+$2\$" "/proc/$SERVE/status"; }

start
check "defaults: every node is root:video 0660" test "$(modes)" = "0:$VIDEO 660"
check "defaults: the daemon logs what capabilities it kept" grep -q "capabilities dropped.*kept=CAP_CHOWN,CAP_SYS_PTRACE" /tmp/serve.log
check "capabilities: effective = CAP_CHOWN + CAP_SYS_PTRACE" cap CapEff 0000000000080001
check "capabilities: permitted the same" cap CapPrm 0000000000080001
check "capabilities: bounding set the same (a program it ran could not regain more)" cap CapBnd 0000000000080001
check "capabilities: none inheritable" cap CapInh 0000000000000000
check "capabilities: none ambient" cap CapAmb 0000000000000000

MEDIA=$(nodes | grep /dev/media | head -n1)
check "a user in group video runs media-ctl -p" as-user $NOBODY $NOBODY,$VIDEO media-ctl -d "$MEDIA" -p
RSZ=$(media-ctl -d "$MEDIA" -e "OMAP3 ISP resizer output")
media-ctl -d "$MEDIA" -r -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]'
media-ctl -d "$MEDIA" -V '"mt9p031 1-0048":0[SGRBG12 1280x720], "OMAP3 ISP CCDC":2[SGRBG10 1280x720], "OMAP3 ISP preview":1[UYVY 1280x720], "OMAP3 ISP resizer":1[UYVY 1280x720]'
# USERPTR: the daemon writes frames into another user's memory (process_vm_writev, which
# needs the CAP_SYS_PTRACE it kept).
as-user $NOBODY $NOBODY,$VIDEO yavta -c5 -u -f UYVY -s 1280x720 "$RSZ" > /tmp/yavta-nobody.txt 2>&1
contains "a user in group video captures 5 USERPTR frames with yavta" /tmp/yavta-nobody.txt "Captured 5 frames"
as-user $NOBODY $NOBODY v4l2-ctl -d "$RSZ" --all > /tmp/denied.txt 2>&1
contains "a user outside group video cannot open a video node" /tmp/denied.txt "Permission denied"
as-user $NOBODY $NOBODY media-ctl -d "$MEDIA" -p > /tmp/denied-media.txt 2>&1
contains "nor the media device (media-ctl: EACCES)" /tmp/denied-media.txt "Failed to enumerate $MEDIA (-13)"

# The buffer socket (MMAP through the preload shim): another user's silent connections,
# reopened as the daemon drops them, do not hold up this client's grants.
SHIM=/usr/local/lib/libmcemu_preload.so
as-user $NOBODY $NOBODY,$VIDEO hostile-client silent /run/mcemu/buffers.sock 20 40 > /tmp/silent.txt 2>&1 &
SILENT=$!
sleep 1
start_t=$(date +%s)
LD_PRELOAD=$SHIM timeout 30 yavta -c5 -f UYVY -s 1280x720 "$RSZ" > /tmp/yavta-mmap.txt 2>&1
took=$(( $(date +%s) - start_t ))
contains "with 20 silent connections of another user on the buffer socket, MMAP capture works" /tmp/yavta-mmap.txt "Captured 5 frames"
check "and is not held up (${took} s; one connection at a time would take 20 x 2 s)" test "$took" -lt 20
kill "$SILENT" 2>/dev/null; wait "$SILENT" 2>/dev/null
check "the daemon refused the silent user's connections beyond 8" grep -q "connections of this user open, refusing another" /tmp/serve.log

# Nodes registered after the capabilities were dropped get the same owner and mode.
mcemu ctl unplug > /dev/null && mcemu ctl replug > /dev/null && mcemu ctl status --wait 30 > /dev/null
check "after unplug and replug: every new node is root:video 0660" test "$(modes)" = "0:$VIDEO 660"

# The control socket: 0600, and the daemon checks the peer's credentials as well.
check "control socket is root-only (0600)" test "$(stat -c '%u %a' /run/mcemu/control.sock)" = "0 600"
as-user $NOBODY $NOBODY mcemu ctl status > /tmp/ctl-nobody.txt 2>&1
check "a non-root user cannot talk to the control socket" sh -c "! grep -q '\"instances\"' /tmp/ctl-nobody.txt"
chmod 0666 /run/mcemu/control.sock
: > /tmp/ctl-peer.txt
for i in 1 2 3 4 5; do as-user $NOBODY $NOBODY mcemu ctl unplug >> /tmp/ctl-peer.txt 2>&1; done
chmod 0600 /run/mcemu/control.sock
check "even with the socket opened up, the daemon refuses uid 65534 (5 of 5 told why)" \
  test "$(grep -c 'uid 65534 may not control mcemu (root only)' /tmp/ctl-peer.txt)" -eq 5
check "and the instance stays plugged" mcemu ctl status --wait 5
stop

# Configured owner, group and mode.
start --node-owner nobody --node-group nogroup --node-mode 0640
check "--node-owner nobody --node-group nogroup --node-mode 0640" test "$(modes)" = "$NOBODY:$NOBODY 640"
stop
start --node-owner 0 --node-group $VIDEO --node-mode 0600
check "numeric owner and group, mode 0600" test "$(modes)" = "0:$VIDEO 600"
stop

# Bad settings: a clear message and exit status 2, no daemon.
bad() { # NAME EXPECTED ARGS...
  name=$1; want=$2; shift 2
  timeout 10 mcemu serve "$@" > /tmp/bad.txt 2>&1; rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$want" /tmp/bad.txt; then ok "$name"; else not_ok "$name" "exit $rc: $(cat /tmp/bad.txt)"; fi
}
bad "--node-mode 999 is refused" "--node-mode: \"999\" is not permission bits in octal" --node-mode 999
bad "--node-mode 4755 (setuid) is refused" "is not permission bits in octal" --node-mode 4755
bad "--node-group of an unknown group is refused" "--node-group: no group named \"nosuchgroup\"" --node-group nosuchgroup
bad "--node-owner of an unknown user is refused" "--node-owner: no user named \"nosuchuser\"" --node-owner nosuchuser

finish
