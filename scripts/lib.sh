# Shared by the scripts: installs missing Debian packages (needs root).
# ensure_packages PKG...
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${missing[@]}" >&2
}
# The packages the VM harness and the suites use.
VM_PACKAGES=(qemu-system-x86 busybox-static cpio kmod v4l-utils yavta gstreamer1.0-tools gstreamer1.0-plugins-good)
