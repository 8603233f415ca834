#!/usr/bin/env bash
# Makes sure a Vulkan driver exists for the wgpu test: a real GPU's, or else Mesa's
# software rasterizer (lavapipe, Debian `mesa-vulkan-drivers`), installed when missing.
set -euo pipefail
icd_dirs=(/usr/share/vulkan/icd.d /etc/vulkan/icd.d)
have_icd() {
    local d
    for d in "${icd_dirs[@]}"; do
        compgen -G "$d/*.json" >/dev/null && return 0
    done
    return 1
}
if have_icd; then
    echo "vulkan: driver manifests found in ${icd_dirs[*]}"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "error: no Vulkan driver (no manifest in ${icd_dirs[*]}) and no apt-get to install Mesa's" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "vulkan: installing mesa-vulkan-drivers (software Vulkan, lavapipe)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers >/dev/null
have_icd || { echo "error: mesa-vulkan-drivers installed but no Vulkan ICD manifest appeared" >&2; exit 1; }
