#!/bin/sh
# VM suite: declarative topologies served (mcemu serve --topology): v4l2-compliance on the
# uvc-like and vimc-like presets, frames through their pipelines with v4l2-ctl and GStreamer,
# the MC-centric pipeline checks, a user's own file, and unplug/replug under each lifetime model.
set -u
. "$(dirname "$0")/lib.sh"

SHIM=/usr/local/lib/libmcemu_preload.so
start() { mcemu serve "$@" 2>/tmp/serve.log & SERVE=$!; mcemu ctl status --wait 30 >/dev/null; }
stop() { kill -TERM "$SERVE" 2>/dev/null; wait "$SERVE"; }
frame_md5() { dd if="$1" bs="$2" skip="$3" count=1 2>/dev/null | md5sum | cut -d' ' -f1; }
# distinct FILE SIZE N: how many distinct byte values frame N holds.
distinct() { dd if="$1" bs="$2" skip="$3" count=1 2>/dev/null | od -An -tu1 -v | tr -s ' ' '\n' | sort -un | grep -c .; }
# compliance NAME DRIVER [ARGS]: v4l2-compliance on the media device and every node behind it
# passes with 0 failures.
compliance() {
  v4l2-compliance -m /dev/media0 ${3:-} > "/tmp/compliance-$1.txt" 2>&1
  line=$(grep "^Grand Total for $2 device /dev/media0:" "/tmp/compliance-$1.txt")
  case "$line" in
    *", Failed: 0, "*) ok "$1: v4l2-compliance ${3:-}passes every node ($line)" ;;
    *) not_ok "$1: v4l2-compliance ${3:-}passes every node" "$line
$(grep -B3 ': FAIL' "/tmp/compliance-$1.txt" | head -40)" ;;
  esac
}

# hostile NAME VIDEO: hostile-client's storm on every node (only answers the kernel could give),
# then its USERPTR abuse on VIDEO (EFAULT/EINVAL, then whole frames into good buffers).
hostile() {
  hostile-client storm $(ls /dev/media* /dev/video* /dev/v4l-subdev* 2>/dev/null) > "/tmp/storm-$1.txt" 2>&1
  rc=$?
  if [ $rc -eq 0 ] && grep -q '^storm: .* 0 violations' "/tmp/storm-$1.txt"; then ok "$1: hostile storm on every node: $(grep '^storm:' "/tmp/storm-$1.txt")"
  else not_ok "$1: hostile storm on every node" "$(head -n 30 "/tmp/storm-$1.txt")"; fi
  hostile-client userptr "$2" > "/tmp/userptr-$1.txt" 2>&1
  fold_results "$1: userptr" "/tmp/userptr-$1.txt"
  eventually "$1: every handle released after the abuse" sh -c "mcemu ctl audit --summary | grep -q ' open_handles=0 '"
}

# --- uvc-like: one video-centric capture node --------------------------------------------------
start --topology uvc-like
compliance uvc-like uvcvideo
has_line "uvc-like: driver uvcvideo" /tmp/compliance-uvc-like.txt "Driver name      : uvcvideo"
has_line "uvc-like: the units have no nodes (1 interface)" /tmp/compliance-uvc-like.txt "Entities: 3 Interfaces: 1 Pads: 4 Links: 3"
media-ctl -p > /tmp/uvc-p.txt 2>&1
contains "uvc-like: media-ctl -p shows the input terminal" /tmp/uvc-p.txt '-> "Processing 2":0 [ENABLED,IMMUTABLE]'
v4l2-ctl -d /dev/video0 --list-formats-ext > /tmp/uvc-fmts.txt 2>&1
contains "uvc-like: ENUM_FMT lists YUYV" /tmp/uvc-fmts.txt "'YUYV' (YUYV 4:2:2)"
contains "uvc-like: ENUM_FRAMESIZES lists the camera's sizes" /tmp/uvc-fmts.txt "Size: Discrete 1280x720"
contains "uvc-like: ENUM_FRAMEINTERVALS its rate" /tmp/uvc-fmts.txt "Interval: Discrete 0.033s (30.000 fps)"
v4l2-ctl -d /dev/video0 --get-parm > /tmp/uvc-parm.txt 2>&1
contains "uvc-like: G_PARM gives the frame rate" /tmp/uvc-parm.txt "Frames per second: 30.000 (30/1)"
v4l2-ctl -d /dev/video0 --set-fmt-video width=1280,height=720,pixelformat=YUYV --stream-user \
  --stream-count=20 --stream-to=/tmp/uvc.raw > /tmp/uvc-stream.txt 2>&1
SIZE=$((1280 * 720 * 2))
check "uvc-like: v4l2-ctl --stream-user writes 20 frames of 1280x720 YUYV" test "$(wc -c < /tmp/uvc.raw)" -eq $((20 * SIZE))
check "uvc-like: the frames change" test "$(frame_md5 /tmp/uvc.raw $SIZE 0)" != "$(frame_md5 /tmp/uvc.raw $SIZE 19)"
check "uvc-like: a frame shows the colour bars" sh -c "test $(distinct /tmp/uvc.raw $SIZE 3) -gt 8"
LD_PRELOAD=$SHIM gst-launch-1.0 -q v4l2src device=/dev/video0 num-buffers=20 ! \
  video/x-raw,width=640,height=480 ! fakesink > /tmp/uvc-gst.txt 2>&1
check "uvc-like: GStreamer v4l2src (MMAP through the shim) runs 20 frames at 640x480" test $? -eq 0
LD_PRELOAD=$SHIM v4l2-compliance -d /dev/video0 -s 10 > /tmp/compliance-uvc-s.txt 2>&1
contains "uvc-like: v4l2-compliance -s: MMAP (select)" /tmp/compliance-uvc-s.txt "test MMAP (select): OK"
contains "uvc-like: v4l2-compliance -s: USERPTR (select)" /tmp/compliance-uvc-s.txt "test USERPTR (select): OK"
check "uvc-like: v4l2-compliance -s has 0 failures" grep -qE \
  "^Total for uvcvideo device /dev/video0: [0-9]+, Succeeded: [0-9]+, Failed: 0, Warnings: [0-9]+$" /tmp/compliance-uvc-s.txt
hostile uvc-like /dev/video0
stop

# --- vimc-like: MC-centric nodes behind sub-devices ---------------------------------------------
start --topology vimc-like
compliance vimc-like vimc
has_line "vimc-like: the graph (9 entities, 9 interfaces)" /tmp/compliance-vimc-like.txt "Entities: 9 Interfaces: 9 Pads: 12 Links: 17"
n=$(grep -cE "^Total for (vimc )?device /dev/(video|v4l-subdev)[0-9]+: [0-9]+, Succeeded: [0-9]+, Failed: 0, Warnings: 0$" /tmp/compliance-vimc-like.txt)
check "vimc-like: 3 video and 6 sub-device nodes each pass with 0 failures and 0 warnings" test "$n" -eq 9
RAW0=$(media-ctl -e "Raw Capture 0")
RGB=$(media-ctl -e "RGB/YUV Capture")
SENSOR_A=$(media-ctl -e "Sensor A")
v4l2-ctl -d "$RAW0" --stream-user --stream-count=10 --stream-to=/tmp/raw0.raw > /tmp/raw0.txt 2>&1
check "vimc-like: Raw Capture 0 streams the sensor's default (640x480 RGB3) out of the box" \
  test "$(wc -c < /tmp/raw0.raw)" -eq $((10 * 640 * 480 * 3))
v4l2-ctl -d "$RGB" --stream-user --stream-count=1 > /tmp/epipe.txt 2>&1
contains "vimc-like: RGB/YUV Capture before the pipeline is configured: STREAMON is EPIPE" /tmp/epipe.txt "Broken pipe"
check "vimc-like: media-ctl -V configures sensor, debayer and scaler" media-ctl -V \
  '"Sensor A":0[fmt:SGRBG8_1X8/640x480], "Debayer A":0[fmt:SGRBG8_1X8/640x480], "Scaler":0[fmt:RGB888_1X24/640x480], "Scaler":1[fmt:RGB888_1X24/1280x720]'
media-ctl --get-v4l2 '"Debayer A":1' > /tmp/deb.txt 2>&1
contains "vimc-like: the debayer's source follows its sink" /tmp/deb.txt "RGB888_1X24/640x480"
v4l2-ctl -d "$RGB" --set-fmt-video width=1280,height=720,pixelformat=RGB3 --stream-user \
  --stream-count=100000 > /dev/null 2>&1 &
STREAM=$!
sleep 2
media-ctl -l '"Debayer A":1->"Scaler":0[0]' > /tmp/busy.txt 2>&1
check "vimc-like: a link of a streaming pipeline cannot change (EBUSY)" grep -q "(16)" /tmp/busy.txt
v4l2-ctl -d "$(media-ctl -e Scaler)" --set-subdev-fmt pad=1,width=320,height=240 > /tmp/busyfmt.txt 2>&1
contains "vimc-like: nor a format of a streaming block" /tmp/busyfmt.txt "Device or resource busy"
v4l2-ctl -d "$RGB" --stream-user --stream-count=1 > /tmp/owner.txt 2>&1
contains "vimc-like: another handle's REQBUFS is EBUSY (the queue has an owner)" /tmp/owner.txt "Device or resource busy"
kill "$STREAM"; wait "$STREAM" 2>/dev/null
check "vimc-like: after the stream, the link can be disabled" media-ctl -l '"Debayer A":1->"Scaler":0[0]'
check "vimc-like: and Debayer B's enabled instead" media-ctl -l '"Debayer B":1->"Scaler":0[1]'
media-ctl -l '"RGB/YUV Input":0->"Scaler":0[1]' > /tmp/second.txt 2>&1
check "vimc-like: a second enabled link into the scaler's sink is refused" grep -q "(16)" /tmp/second.txt
v4l2-ctl -d "$SENSOR_A" --list-ctrls-menus > /tmp/ctrls.txt 2>&1
contains "vimc-like: the sensor has a test pattern control" /tmp/ctrls.txt "test_pattern"
check "vimc-like: set the test pattern to black" v4l2-ctl -d "$SENSOR_A" --set-ctrl test_pattern=2
v4l2-ctl -d "$RAW0" --set-fmt-video width=640,height=480,pixelformat=BA81 > /dev/null 2>&1
check "vimc-like: Sensor A back to 640x480 SGRBG8 is kept" sh -c "media-ctl --get-v4l2 '\"Sensor A\":0' | grep -q SGRBG8_1X8/640x480"
v4l2-ctl -d "$RAW0" --set-fmt-video width=640,height=480,pixelformat=GRBG --stream-user \
  --stream-count=3 --stream-to=/tmp/black.raw > /tmp/black.txt 2>&1
check "vimc-like: Raw Capture 0 streams Bayer GRBG once the formats match" test "$(wc -c < /tmp/black.raw)" -eq $((3 * 640 * 480))
check "vimc-like: a black test-pattern frame has at most 2 values (black, the moving line)" \
  sh -c "test $(distinct /tmp/black.raw $((640 * 480)) 1) -le 2"
hostile vimc-like "$RAW0"
stop

# --- a user's own topology file ------------------------------------------------------------------
cat > /tmp/mine.toml <<'TOML'
[device]
driver = "mydrv"
model = "My Test Rig"
bus_info = "platform:mine"

[[entity]]
name = "grey sensor"
block = "sensor"
formats = ["Y8_1X8"]
sizes = ["320x240-1920x1080"]
frame_rate = 60

[[entity]]
name = "csi bridge"
block = "bridge"

[[entity]]
name = "grey capture"
block = "capture"
formats = ["GREY"]

[[link]]
source = "grey sensor:0"
sink = "csi bridge:0"
flags = ["enabled", "immutable"]

[[link]]
source = "csi bridge:1"
sink = "grey capture:0"
flags = ["enabled", "immutable"]
TOML
start --topology /tmp/mine.toml
media-ctl -p > /tmp/mine-p.txt 2>&1
contains "file: media-ctl -p shows the file's model" /tmp/mine-p.txt "My Test Rig"
check "file: media-ctl -V sets the sensor to 800x600, the bridge follows" media-ctl -V \
  '"grey sensor":0[fmt:Y8_1X8/800x600], "csi bridge":0[fmt:Y8_1X8/800x600]'
v4l2-ctl -d "$(media-ctl -e "grey capture")" --set-fmt-video width=800,height=600,pixelformat=GREY \
  --stream-user --stream-count=5 --stream-to=/tmp/mine.raw > /tmp/mine.txt 2>&1
check "file: 5 GREY frames of 800x600" test "$(wc -c < /tmp/mine.raw)" -eq $((5 * 800 * 600))
compliance mine mydrv
stop
printf '[device]\ndriver = "x"\nmodel = "y"\nbus_info = "z"\n\n[[entity]]\nname = "cam"\nblock = "sensor"\nformats = ["NOPE"]\n' > /tmp/bad.toml
mcemu serve --topology /tmp/bad.toml > /tmp/bad.txt 2>&1
check "a bad file: mcemu serve exits 2" test $? -eq 2
contains "a bad file: the message names the entity and the code" /tmp/bad.txt 'entity "cam": unknown media bus code "NOPE"'

# --- unplug while streaming, under each lifetime model --------------------------------------------
for model in refcount devm registered-bit; do
  start --topology uvc-like --lifetime $model
  v4l2-ctl -d /dev/video0 --stream-user --stream-count=100000 > /tmp/unplug-stream.txt 2>&1 &
  STREAM=$!
  sleep 2
  check "$model: unplug while v4l2-ctl streams" mcemu ctl unplug
  eventually "$model: the streaming client ends" sh -c "! kill -0 $STREAM 2>/dev/null"
  wait "$STREAM" 2>/dev/null
  eventually "$model: everything released after the client's close" sh -c \
    "mcemu ctl audit --summary | grep -q '^instances=1 registered=0 unplugged=0 released=1 open_handles=0 live_objects=0 '"
  check "$model: replug" mcemu ctl replug
  eventually "$model: the new /dev/media0 answers media-ctl -p" sh -c "media-ctl -p | grep -q 'mcemu USB Camera'"
  stop
done

# --- several topology instances -------------------------------------------------------------------
start --topology vimc-like --instances 4
n=0; for m in 0 1 2 3; do media-ctl -d /dev/media$m -p 2>/dev/null | grep -q "VIMC MDEV" && n=$((n + 1)); done
check "4 vimc-like instances: each media device answers media-ctl -p" test "$n" -eq 4
stop

# --- several topology files in one daemon ------------------------------------------------------
start --topology uvc-like --topology vimc-like --topology usb-av-like
models=$(for m in 0 1 2; do media-ctl -d /dev/media$m -p 2>/dev/null | sed -n 's/^model *//p'; done | tr '\n' ';')
check "three topologies: media0..2 are the USB camera, vimc and the USB TV" test "$models" = "mcemu USB Camera;VIMC MDEV;mcemu USB TV;"
check "three topologies: unplug the vimc-like instance" mcemu ctl unplug --instance 1
check "... and replug it" mcemu ctl replug --instance 1
mcemu ctl status > /tmp/mixed.json
contains "... the replugged instance is vimc-like again" /tmp/mixed.json '"model": "topology vimc-like"'
eventually "... and its media device answers media-ctl -p" sh -c "media-ctl -d /dev/media1 -p | grep -q 'VIMC MDEV'"
check "three topologies: unbind au0828 on the shared one" mcemu ctl unbind --driver au0828
check "... its media device stays, with the audio entity alone" sh -c "media-ctl -d /dev/media2 -p | grep -c '^- entity' | grep -qx 1"
mcemu ctl unbind --driver au0828 > /tmp/unbind2.txt 2>&1
contains "... unbinding it again is refused with a message" /tmp/unbind2.txt "no instance has a bound driver"
mcemu ctl bind --driver uvcvideo > /tmp/bind-uvc.txt 2>&1
contains "... bind of a driver no shared device has is refused" /tmp/bind-uvc.txt "no shared media device"
stop

finish
