#!/bin/sh
# VM suite: the mcemu daemon's /dev/media0 driven by real clients.
set -u
. "$(dirname "$0")/lib.sh"

expect_info() { # board hw_revision
  out=/tmp/compliance-$1.txt
  v4l2-compliance -C never -m /dev/media0 > "$out" 2>&1
  kver=$(uname -r | sed 's/[^0-9.].*//; s/^\([0-9]*\.[0-9]*\)$/\1.0/')
  has_line "$1: driver name" "$out" "Driver name      : omap3isp"
  has_line "$1: model" "$out" "Model            : TI OMAP3 ISP"
  has_line "$1: empty serial" "$out" "Serial           : "
  has_line "$1: bus info" "$out" "Bus info         : platform:480bc000.isp"
  has_line "$1: hardware revision" "$out" "Hardware revision: $2"
  has_line "$1: media version is the running kernel's" "$out" "Media version    : $kver"
  has_line "$1: driver version is the running kernel's" "$out" "Driver version   : $kver"
  has_line "$1: v4l2-compliance MEDIA_IOC_DEVICE_INFO" "$out" "test MEDIA_IOC_DEVICE_INFO: OK"
  has_line "$1: v4l2-compliance invalid ioctls (ENOTTY)" "$out" "test invalid ioctls: OK"
  has_line "$1: v4l2-compliance multiple opens" "$out" "test for unlimited opens: OK"
  has_line "$1: v4l2-compliance G_TOPOLOGY" "$out" "test MEDIA_IOC_G_TOPOLOGY: OK"
  has_line "$1: v4l2-compliance ENUM_ENTITIES/LINKS" "$out" "test MEDIA_IOC_ENUM_ENTITIES/LINKS: OK"
  has_line "$1: v4l2-compliance SETUP_LINK" "$out" "test MEDIA_IOC_SETUP_LINK: OK"
  has_line "$1: v4l2-compliance counts the graph" "$out" "Entities: 16 Interfaces: 16 Pads: 22 Links: 32"
  has_line "$1: the media device section passes with 0 failures" "$out" \
    "Total for omap3isp device /dev/media0: 8, Succeeded: 8, Failed: 0, Warnings: 0"
  n=$(grep -cE "^Total for device /dev/v4l-subdev[0-7]: [0-9]+, Succeeded: [0-9]+, Failed: 0, Warnings: 0$" "$out")
  if [ "$n" -eq 8 ]; then ok "$1: all 8 ISP sub-device nodes pass"; else not_ok "$1: all 8 ISP sub-device nodes pass" "$(grep '^Total for device' "$out")"; fi
  # The sensor drivers have controls but no V4L2_SUBDEV_FL_HAS_EVENTS, so v4l2-compliance's
  # control-event test fails on them, as it does on the real hardware; everything else passes.
  has_line "$1: the sensor node fails only the control-event test" "$out" \
    "Total for device /dev/v4l-subdev8: 43, Succeeded: 42, Failed: 1, Warnings: 0"
  sed -n '/^Compliance test for device \/dev\/v4l-subdev8/,/^Total for device \/dev\/v4l-subdev8/p' "$out" > /tmp/sensor-compliance.txt
  has_line "$1: that test is VIDIOC_(UN)SUBSCRIBE_EVENT/DQEVENT" /tmp/sensor-compliance.txt "test VIDIOC_(UN)SUBSCRIBE_EVENT/DQEVENT: FAIL"
  has_line "$1: the sensor's extended controls pass" /tmp/sensor-compliance.txt "test VIDIOC_G/S/TRY_EXT_CTRLS: OK"
  # Video nodes: what fails fails on the real driver too, with no pipeline configured. Formats
  # and buffer queues are per file handle (a second handle's REQBUFS succeeds where the test
  # wants EBUSY; S_FMT on one handle does not show in another's G_FMT), and a capture node's
  # TRY/S_FMT need an enabled link (EINVAL otherwise).
  for n in 0 1 2 3 4 5 6; do
    case $n in 0|3|5) want="VIDIOC_S_FMT;VIDIOC_REQBUFS/CREATE_BUFS/QUERYBUF;" ;;
      *) want="VIDIOC_TRY_FMT;VIDIOC_S_FMT;Scaling;VIDIOC_REQBUFS/CREATE_BUFS/QUERYBUF;" ;; esac
    got=$(sed -n "/^Compliance test for ispvideo device \/dev\/video$n:/,/^Total for ispvideo device \/dev\/video$n:/p" "$out" \
      | grep ': FAIL$' | sed 's/^[[:space:]]*test //; s/: FAIL$//' | tr '\n' ';')
    if [ "$got" = "$want" ]; then ok "$1: /dev/video$n fails only the per-handle tests"
    else not_ok "$1: /dev/video$n fails only the per-handle tests" "got: $got"; fi
  done
  total=$(grep -c "^Total for ispvideo device /dev/video[0-6]: 45, " "$out")
  check "$1: v4l2-compliance ran its 45 tests on each of the 7 video nodes" test "$total" -eq 7
}

check_graph() { # NAME [BOARD]: media-ctl -p prints the driver's graph (kernel version lines aside)
  board=${2:-$1}
  media-ctl -d /dev/media0 -p 2>&1 | grep -v "^Media controller API version\|^driver version" > /tmp/graph.txt
  if out=$(diff -u "$(dirname "$0")/golden/media-ctl-p-$board.txt" /tmp/graph.txt); then ok "$1: media-ctl -p graph"
  else not_ok "$1: media-ctl -p graph" "$out"; fi
}

start() { # args to mcemu serve
  mcemu serve "$@" 2>/tmp/serve.log &
  SERVE=$!
}

stop() {
  kill -TERM "$SERVE" 2>/dev/null
  wait "$SERVE"
}

check "ctl status without a daemon fails" sh -c '! mcemu ctl status'

start --board beagleboard-xm
check "ctl status --wait 30 once the nodes are registered" mcemu ctl status --wait 30
mcemu ctl status > /tmp/status.json
contains "status reports media0 registered" /tmp/status.json '"registered": true'
check "/dev/media0 is a character device" test -c /dev/media0
expect_info beagleboard-xm "0x000000f0 (240)"
check_graph beagleboard-xm
# Every video node answers VIDIOC_QUERYCAP as ispvideo, in the driver's /dev order.
n=0
for card in "CCP2 input:0x24200002" "CSI2a output:0x24200001" "CCDC output:0x24200001" \
            "preview input:0x24200002" "preview output:0x24200001" "resizer input:0x24200002" \
            "resizer output:0x24200001"; do
  v4l2-ctl -d /dev/video$n -D > /tmp/cap.txt 2>&1
  has_line "video$n: driver ispvideo" /tmp/cap.txt "Driver name      : ispvideo"
  has_line "video$n: card OMAP3 ISP ${card%%:*}" /tmp/cap.txt "Card type        : OMAP3 ISP ${card%%:*}"
  has_line "video$n: device caps ${card##*:}" /tmp/cap.txt "Device Caps      : ${card##*:}"
  has_line "video$n: capabilities" /tmp/cap.txt "Capabilities     : 0xa4200003"
  n=$((n + 1))
done
v4l2-ctl -d /dev/v4l-subdev8 -D > /tmp/cap.txt 2>&1
has_line "v4l-subdev8 answers VIDIOC_SUBDEV_QUERYCAP" /tmp/cap.txt "Capabilities     : 0x00000000"
# A pipeline as on a BeagleBoard-xM: sensor -> CCDC -> preview -> resizer -> memory.
check "media-ctl -l enables the sensor->CCDC->preview->resizer->memory pipeline" media-ctl -d /dev/media0 -l \
  '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]'
media-ctl -d /dev/media0 -p > /tmp/p.txt
for l in '<- "mt9p031 1-0048":0 [ENABLED]' '-> "OMAP3 ISP preview":0 [ENABLED]' '-> "OMAP3 ISP resizer":0 [ENABLED]' \
         '-> "OMAP3 ISP resizer output":0 [ENABLED]'; do
  has_line "media-ctl -p shows $l" /tmp/p.txt "$l"
done
media_ctl_fails() { # NAME ERRNO LINK
  if out=$(media-ctl -d /dev/media0 -l "$3" 2>&1); then not_ok "$1" "media-ctl succeeded"
  elif echo "$out" | grep -q "($2)"; then ok "$1"
  else not_ok "$1" "$out"; fi
}
media_ctl_fails "the CCDC drives one output at a time (EBUSY)" 16 '"OMAP3 ISP CCDC":1->"OMAP3 ISP CCDC output":0[1]'
media_ctl_fails "the CCDC takes one input at a time (EBUSY)" 16 '"OMAP3 ISP CCP2":1->"OMAP3 ISP CCDC":0[1]'
media_ctl_fails "the resizer reads memory or the video port, not both (EBUSY)" 16 '"OMAP3 ISP resizer input":0->"OMAP3 ISP resizer":0[1]'
media_ctl_fails "immutable links stay enabled (EINVAL)" 22 '"OMAP3 ISP CCDC":2->"OMAP3 ISP AEWB":0[0]'
check "media-ctl -r resets the links" media-ctl -d /dev/media0 -r
check_graph "beagleboard-xm after media-ctl -r" beagleboard-xm
# Pad formats: the CCDC's propagation and crop rules (omap3isp.md §2.4, dump 1).
check "media-ctl -V sets the CCDC sink to SGRBG12 1298x970" media-ctl -d /dev/media0 -V '"OMAP3 ISP CCDC":0 [fmt:SGRBG12_1X12/1298x970]'
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP CCDC":1' > /tmp/of.txt
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP CCDC":2' > /tmp/vp.txt
contains "CCDC OF: width rounded down to 16, crop reset" /tmp/of.txt "[fmt:SGRBG12_1X12/1296x970 field:none colorspace:srgb"
contains "CCDC OF: crop bounds up to the next multiple of 16" /tmp/of.txt "crop.bounds:(0,0)/1312x970"
contains "CCDC VP: truncated to 10 bits, one line less" /tmp/vp.txt "[fmt:SGRBG10_1X10/1298x969 field:none colorspace:srgb]"
check "media-ctl -V crops the CCDC OF" media-ctl -d /dev/media0 -V '"OMAP3 ISP CCDC":1 [crop:(3,5)/1000x601]'
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP CCDC":1' > /tmp/of.txt
contains "CCDC crop: even origin, width a multiple of 16, even height" /tmp/of.txt "crop:(2,4)/992x600"
contains "CCDC OF follows the crop" /tmp/of.txt "[fmt:SGRBG12_1X12/992x600"
check "media-ctl -l enables the sensor link for -V" media-ctl -d /dev/media0 -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1]'
check "media-ctl -V on the sensor: 1280x720 snaps to a skipping ratio" media-ctl -d /dev/media0 -V '"mt9p031 1-0048":0 [fmt:SGRBG12_1X12/1280x720]'
media-ctl -d /dev/media0 --get-v4l2 '"mt9p031 1-0048":0' > /tmp/sensor.txt
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP CCDC":0' > /tmp/sink.txt
contains "mt9p031: 2592/1280 and 1944/720 round to ratios 2 and 3" /tmp/sensor.txt "[fmt:SGRBG12_1X12/1296x648 field:none colorspace:srgb"
contains "mt9p031: the crop window stays" /tmp/sensor.txt "crop:(16,54)/2592x1944]"
contains "media-ctl propagates the sensor format to the CCDC sink" /tmp/sink.txt "[fmt:SGRBG12_1X12/1296x648 field:none colorspace:srgb]"
# The classic BeagleBoard-xM recipe, formats only: sensor -> CCDC -> preview -> resizer.
check "recipe: media-ctl -r -l" media-ctl -d /dev/media0 -r -l '"mt9p031 1-0048":0->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":2->"OMAP3 ISP preview":0[1], "OMAP3 ISP preview":1->"OMAP3 ISP resizer":0[1], "OMAP3 ISP resizer":1->"OMAP3 ISP resizer output":0[1]'
check "recipe: media-ctl -V along the pipeline" media-ctl -d /dev/media0 -V '"mt9p031 1-0048":0 [fmt:SGRBG12_1X12/1280x720], "OMAP3 ISP CCDC":2 [fmt:SGRBG10_1X10/1296x647], "OMAP3 ISP preview":1 [fmt:UYVY8_1X16/1278x639], "OMAP3 ISP resizer":1 [fmt:UYVY8_1X16/640x480]'
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP preview":0' > /tmp/prv.txt
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP resizer":0' > /tmp/rsz0.txt
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP resizer":1' > /tmp/rsz1.txt
contains "recipe: the preview sink gets the CCDC VP format (one line less, 10 bits)" /tmp/prv.txt "[fmt:SGRBG10_1X10/1296x647"
contains "recipe: preview crop with CCDC input: (10,4)/(W-18)x(H-8)" /tmp/prv.txt "crop:(10,4)/1278x639]"
contains "recipe: the resizer sink gets the preview source" /tmp/rsz0.txt "[fmt:UYVY8_1X16/1278x639"
contains "recipe: the resizer scales to 640x480" /tmp/rsz1.txt "[fmt:UYVY8_1X16/640x480 field:none colorspace:srgb]"
v4l2-ctl -d /dev/video6 --set-fmt-video=width=1,height=1,pixelformat=GREY --get-fmt-video > /tmp/vfmt.txt 2>&1
has_line "recipe: S_FMT on the resizer output takes the resizer's source format" /tmp/vfmt.txt "Width/Height      : 640/480"
has_line "recipe: UYVY from UYVY8_1X16" /tmp/vfmt.txt "Pixel Format      : 'UYVY' (UYVY 4:2:2)"
has_line "recipe: bytesperline 640 x 2" /tmp/vfmt.txt "Bytes per Line    : 1280"
has_line "recipe: sizeimage" /tmp/vfmt.txt "Size Image        : 614400"
v4l2-ctl -d /dev/video6 --list-formats > /tmp/lf.txt 2>&1
check "ENUM_FMT lists the 21 distinct pixel formats" test "$(grep -c "^[[:space:]]*\[[0-9]*\]:" /tmp/lf.txt)" -eq 21
v4l2-ctl -d /dev/video2 --get-fmt-video > /tmp/vfmt.txt 2>&1
has_line "a new handle starts at 720x480 (Linux 7.0)" /tmp/vfmt.txt "Width/Height      : 720/480"
# Controls: the preview's brightness and contrast, the MT9P031's (v4l2-ctl through the control
# framework's ioctls).
v4l2-ctl -d /dev/v4l-subdev3 -l > /tmp/ctrls.txt 2>&1
contains "preview: brightness 0..255, default 0" /tmp/ctrls.txt "brightness 0x00980900 (int)    : min=0 max=255 step=1 default=0"
contains "preview: contrast 0..255, default 16" /tmp/ctrls.txt "contrast 0x00980901 (int)    : min=0 max=255 step=1 default=16"
check "preview: --set-ctrl brightness=300" v4l2-ctl -d /dev/v4l-subdev3 --set-ctrl brightness=300,contrast=40
v4l2-ctl -d /dev/v4l-subdev3 --get-ctrl brightness,contrast > /tmp/ctrls.txt 2>&1
has_line "preview: brightness clamps to 255" /tmp/ctrls.txt "brightness: 255"
has_line "preview: contrast set" /tmp/ctrls.txt "contrast: 40"
check "mt9p031: gain 51 and a test pattern" v4l2-ctl -d /dev/v4l-subdev8 --set-ctrl gain=51,test_pattern=2
v4l2-ctl -d /dev/v4l-subdev8 --get-ctrl gain,test_pattern,pixel_rate > /tmp/ctrls.txt 2>&1
has_line "mt9p031: the driver rounds gain 51 to 50" /tmp/ctrls.txt "gain: 50"
has_line "mt9p031: pixel rate 48 MHz" /tmp/ctrls.txt "pixel_rate: 48000000"
v4l2-ctl -d /dev/v4l-subdev8 -l > /tmp/ctrls.txt 2>&1
contains "mt9p031: a test pattern deactivates BLC auto" /tmp/ctrls.txt "blc_auto 0x00981902 (bool)   : default=1 value=1 flags=inactive"
check "mt9p031: pixel_rate is read-only (EACCES)" sh -c \
  'v4l2-ctl -d /dev/v4l-subdev8 --set-ctrl pixel_rate=5 2>&1 | grep -q "Permission denied"'
check "the CCDC has no controls (v4l2-ctl -l lists none)" sh -c \
  'out=$(v4l2-ctl -d /dev/v4l-subdev2 -l 2>&1) && test -z "$out"'
# The statistics engines' private ioctls, as a 3A loop issues them before streaming.
isp-stat-client > /tmp/stat.log 2>&1
fold_results "stat ioctls" /tmp/stat.log
isp-stat-client cfg /dev/v4l-subdev2 /dev/v4l-subdev3 > /tmp/cfg.log 2>&1
fold_results "CCDC and preview configuration" /tmp/cfg.log
check "media-ctl -r" media-ctl -d /dev/media0 -r
check "media-ctl -V sets the preview sink" media-ctl -d /dev/media0 -V '"OMAP3 ISP preview":0 [fmt:SGRBG10_1X10/1298x969]'
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP preview":0' > /tmp/prv.txt
contains "preview crop margins for Bayer input: (8,4)/(W-14)x(H-8)" /tmp/prv.txt "crop:(8,4)/1284x961"
check "a second daemon on the same control socket is refused" sh -c \
  'mcemu serve 2>/tmp/second.log; test $? -ne 0 && grep -q "already listening" /tmp/second.log'
stop
check "SIGTERM shuts the daemon down cleanly" test "$?" -eq 0
check "the node goes away with the daemon" test ! -e /dev/media0
check "the control socket goes away with the daemon" test ! -e /run/mcemu/control.sock

start --board n900
check "n900: ctl status --wait 30" mcemu ctl status --wait 30
expect_info n900 "0x00000020 (32)"
check_graph n900
check "n900: media-ctl -l enables et8ek8 -> CCP2 -> CCDC -> memory" media-ctl -d /dev/media0 -l \
  '"et8ek8 3-003e":0->"OMAP3 ISP CCP2":0[1], "OMAP3 ISP CCP2":1->"OMAP3 ISP CCDC":0[1], "OMAP3 ISP CCDC":1->"OMAP3 ISP CCDC output":0[1]'
media-ctl -d /dev/media0 -p > /tmp/p.txt
has_line "n900: sensor link enabled" /tmp/p.txt '-> "OMAP3 ISP CCP2":0 [ENABLED]'
has_line "n900: CCP2 -> CCDC enabled" /tmp/p.txt '<- "OMAP3 ISP CCP2":1 [ENABLED]'
media_ctl_fails "n900: CCP2 reads the sensor or memory, not both (EBUSY)" 16 '"OMAP3 ISP CCP2 input":0->"OMAP3 ISP CCP2":0[1]'
check "n900: media-ctl -r" media-ctl -d /dev/media0 -r
check_graph "n900 after media-ctl -r" n900
# The ET8EK8's mode table: codes, sizes and intervals in the order the driver's sort leaves them.
v4l2-ctl -d /dev/v4l-subdev8 --get-ctrl pixel_rate > /tmp/ctrls.txt 2>&1
has_line "n900: the pixel rate is 1 until a format is set (the driver computes it then)" /tmp/ctrls.txt "pixel_rate: 1"
v4l2-ctl -d /dev/v4l-subdev8 --list-subdev-mbus-codes pad=0 > /tmp/codes.txt 2>&1
check "n900: et8ek8 codes: SGRBG10 first, then DPCM8, no more" sh -c \
  'grep "MEDIA_BUS_FMT" /tmp/codes.txt | tr -d "\t" | tr "\n" " " | grep -qx "0x300a: MEDIA_BUS_FMT_SGRBG10_1X10 0x3009: MEDIA_BUS_FMT_SGRBG10_DPCM8_1X8 "'
v4l2-ctl -d /dev/v4l-subdev8 --list-subdev-framesizes pad=0,code=0x3009 > /tmp/sizes.txt 2>&1
n=$(grep -c "Size Range" /tmp/sizes.txt)
check "n900: DPCM8 comes in two sizes" test "$n" -eq 2
v4l2-ctl -d /dev/v4l-subdev8 --list-subdev-frameintervals pad=0,width=1296,height=984,code=0x3009 > /tmp/ivals.txt 2>&1
has_line "n900: 1296x984 DPCM8 at 25 fps" /tmp/ivals.txt "Interval: 0.040s (25.000 fps)"
has_line "n900: 1296x984 DPCM8 at 30 fps" /tmp/ivals.txt "Interval: 0.033s (30.000 fps)"
check "n900: media-ctl -V picks a mode by size and rate" media-ctl -d /dev/media0 -V '"et8ek8 3-003e":0 [fmt:SGRBG10_DPCM8_1X8/1280x960@1/30]'
media-ctl -d /dev/media0 --get-v4l2 '"et8ek8 3-003e":0' > /tmp/sensor.txt
contains "n900: the nearest mode, 1296x984 at 100/3000" /tmp/sensor.txt "[fmt:SGRBG10_DPCM8_1X8/1296x984@100/3000]"
v4l2-ctl -d /dev/v4l-subdev8 --get-ctrl pixel_rate,exposure > /tmp/ctrls.txt 2>&1
has_line "n900: the pixel rate follows the mode (1296x984 at 30 fps)" /tmp/ctrls.txt "pixel_rate: 39525632"
has_line "n900: exposure defaults to the mode's maximum" /tmp/ctrls.txt "exposure: 1004"
check "n900: a rate no mode of this size has is EINVAL" sh -c \
  'v4l2-ctl -d /dev/v4l-subdev8 --set-subdev-fps pad=0,fps=15 2>&1 | grep -q "S_FRAME_INTERVAL: failed: Invalid argument"'
check "n900: media-ctl -l enables the sensor link" media-ctl -d /dev/media0 -l '"et8ek8 3-003e":0->"OMAP3 ISP CCP2":0[1]'
check "n900: media-ctl -V 864x656 with the link enabled" media-ctl -d /dev/media0 -V '"et8ek8 3-003e":0 [fmt:SGRBG10_1X10/864x656]'
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP CCP2":0' > /tmp/ccp2.txt
contains "n900: media-ctl propagates the sensor format to the CCP2 sink" /tmp/ccp2.txt "[fmt:SGRBG10_1X10/864x656 field:none colorspace:srgb]"
media-ctl -d /dev/media0 --get-v4l2 '"OMAP3 ISP CCP2":1' > /tmp/ccp2.txt
contains "n900: the CCP2 propagates it to its source" /tmp/ccp2.txt "[fmt:SGRBG10_1X10/864x656 field:none colorspace:srgb]"
stop

# Another driver's nodes exist: take the first free numbers, and report our real device numbers
# in the topology so media-ctl finds our nodes.
mknod /dev/media0 c 1 3
mknod /dev/video0 c 1 3
mknod /dev/v4l-subdev0 c 1 3
start
check "with foreign nodes present, ctl status --wait 30" mcemu ctl status --wait 30
check "the daemon registers /dev/media1" test -c /dev/media1
media-ctl -d /dev/media1 -p > /tmp/p.txt 2>&1
has_line "CCP2 input is /dev/video1" /tmp/p.txt "device node name /dev/video1"
has_line "resizer output is /dev/video7" /tmp/p.txt "device node name /dev/video7"
has_line "the sensor is /dev/v4l-subdev9" /tmp/p.txt "device node name /dev/v4l-subdev9"
stop
rm -f /dev/media0 /dev/video0 /dev/v4l-subdev0

check "an unknown board is refused with a message" sh -c \
  'mcemu serve --board pandaboard 2>&1 | grep -q "unknown board \"pandaboard\""'
finish
