#!/usr/bin/env bash
# edgepose on aarch64, under qemu user-mode emulation. Needs root (apt,
# debootstrap, chroot, mounts) on a Debian x86-64 host, and the host venv
# (.venv, as .ci/run makes it) for the x86 half of the parity check.
#   1. the C core and its own tests, cross-compiled with aarch64-linux-gnu-gcc
#      (the flags setup.py uses), run under qemu-aarch64-static;
#   2. a minimal arm64 Debian rootfs (debootstrap) with python3, gcc and the
#      runtimes' aarch64 wheels (the versions the host venv has), every
#      program in it emulated as a Cortex-A72 (Raspberry Pi 4: ARMv8.0 + NEON);
#   3. the aarch64 abi3 wheel built there with `python -m build` from a copy
#      of the checkout (the Cython extension compiled natively), installed;
#   4. the tests marked arm64 (kernels against their NumPy references,
#      Estimator on every runtime) against the installed wheel, and meanwhile
#   5. tests/arm64_parity.py on the host and in the rootfs, compared.
# Everything lives in a temporary directory, unmounted and removed on exit.
# Emulated timings are not performance figures.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
shared=$(cd "${EDGEPOSE_SHARED:-$repo/../shared}" && pwd)
host_python=${HOST_PYTHON:-$repo/.venv/bin/python}
start=$(date +%s)
# qemu's default CPU ("max") offers SVE/SME, i8mm and more: the runtimes then
# pick kernels that qemu runs 25x slower, and XNNPACK's int8 path gives
# MoveNet garbage there. A Cortex-A72 is what edge boards have.
export QEMU_CPU=${QEMU_CPU:-cortex-a72}
say() { echo "arm64: $* [$(( $(date +%s) - start )) s]"; }

[ "$(id -u)" -eq 0 ] || { echo "arm64: needs root (debootstrap, chroot, mounts)" >&2; exit 2; }
[ -d "$shared/models" ] || { echo "arm64: no models in $shared; set EDGEPOSE_SHARED" >&2; exit 2; }
[ -x "$host_python" ] || { echo "arm64: no host Python at $host_python; run .ci/run or set HOST_PYTHON" >&2; exit 2; }

# --- host tools --------------------------------------------------------------
packages=()
command -v aarch64-linux-gnu-gcc >/dev/null || packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null || packages+=(qemu-user-static)
command -v update-binfmts >/dev/null || packages+=(binfmt-support)
command -v debootstrap >/dev/null || packages+=(debootstrap)
if [ ${#packages[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64
say "host tools ready"

tmp=$(mktemp -d /var/tmp/edgepose-arm64.XXXXXX)
root=$tmp/root
mounted=()
csrc_job= parity_job=
cleanup() {
    set +e
    for job in $csrc_job $parity_job; do kill "$job" 2>/dev/null && wait "$job" 2>/dev/null; done
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[i]}" || umount -l "${mounted[i]}"; done
    rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
mnt() { mount "$@"; mounted+=("${@: -1}"); }

# --- 1. the C core, cross-compiled, under qemu -------------------------------
# With setup.py's flags (-O3; GCC 12 warns falsely there that ep_heatmap.c's
# logv may be used uninitialized, so no -Werror: the -O1 sanitizer build in
# tests/test_csrc.py keeps it), while the rootfs is made.
make -s -C csrc test BUILD="$tmp/csrc" CC=aarch64-linux-gnu-gcc SANITIZE= FUZZ_ITERATIONS=5000 \
    CFLAGS="-std=c99 -O3 -fno-math-errno -fno-trapping-math -Wall -Wextra -pedantic" \
    RUN="qemu-aarch64-static -L /usr/aarch64-linux-gnu" > "$tmp/csrc.log" 2>&1 &
csrc_job=$!

# --- 2. the rootfs -------------------------------------------------------------
# The Debian mirror and release apt is configured with (one-line or deb822 sources).
mirror=$(grep -hsE '^(deb|URIs:) ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             /etc/apt/sources.list.d/*.sources | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ') || true
mirror=${mirror:-http://deb.debian.org/debian}
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
debootstrap --arch=arm64 --foreign --variant=minbase --include=python3,python3-dev,python3-venv,gcc,libc6-dev \
    "$suite" "$root" "$mirror" > "$tmp/debootstrap.log" 2>&1 \
    || { tail -n 20 "$tmp/debootstrap.log"; exit 1; }
chroot "$root" /debootstrap/debootstrap --second-stage >> "$tmp/debootstrap.log" 2>&1 \
    || { tail -n 20 "$root/debootstrap/debootstrap.log" "$tmp/debootstrap.log"; exit 1; }
say "arm64 $suite rootfs (python3, gcc) from $mirror"

cp /etc/resolv.conf "$root/etc/resolv.conf"
# apt settings the host needs to reach its mirror (proxy, snapshot validity)
for f in /etc/apt/apt.conf.d/*; do
    grep -qsiE 'proxy|Check-Valid-Until|Check-Date' "$f" && cp "$f" "$root/etc/apt/apt.conf.d/"
done
# onnxruntime and ai-edge-litert crash under qemu-user reading the host's
# x86 /proc/cpuinfo: show them an ARM one (Cortex-A72, 2 cores).
cat > "$tmp/cpuinfo" <<'EOF'
processor	: 0
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

processor	: 1
BogoMIPS	: 108.00
Features	: fp asimd evtstrm crc32 cpuid
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x0
CPU part	: 0xd08
CPU revision	: 3

EOF
mnt -t proc proc "$root/proc"
mnt --bind "$tmp/cpuinfo" "$root/proc/cpuinfo"
mnt -t sysfs -o ro sysfs "$root/sys"
mnt --bind /dev "$root/dev"
mkdir -p "$root/shared"
mnt --bind -o ro "$shared" "$root/shared"

in_root() {
    chroot "$root" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 QEMU_CPU="$QEMU_CPU" \
        PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_DEFAULT_TIMEOUT=180 PIP_PROGRESS_BAR=off ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} \
        ${https_proxy:+https_proxy=$https_proxy} ${http_proxy:+http_proxy=$http_proxy} \
        EDGEPOSE_SHARED=/shared "$@"
}
# pip there trusts what the host trusts
mkdir -p "$root/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"

# A copy of what a fresh clone holds (tracked and new files, not build outputs:
# no host .so can leak in), since the build writes into its source tree.
mkdir -p "$root/src"
git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -C "$root/src" -xf -

# The runtimes at the host venv's versions, so both halves run the same
# libraries; the build requirements of pyproject.toml, for a build without an
# isolated environment (which would cost another emulated pip run).
pins=$("$host_python" -m pip freeze 2>/dev/null \
    | grep -iE '^(numpy|onnxruntime|ai-edge-litert|openvino|opencv-python-headless|pycocotools|pytest|hypothesis)==' || true)
build_requires=$(in_root python3 -c 'import tomllib; print(" ".join(tomllib.load(open("/src/pyproject.toml", "rb"))["build-system"]["requires"]))')
in_root python3 -m venv /opt/venv
# shellcheck disable=SC2086
# --no-compile: byte-compiling every module of the runtimes under emulation
# costs more than compiling the few that are imported, when they are.
in_root /opt/venv/bin/pip install -q --no-compile build $build_requires \
    ${pins:-numpy onnxruntime ai-edge-litert openvino opencv-python-headless pycocotools pytest hypothesis}
say "$(in_root python3 -c 'import platform; print("Python", platform.python_version(), platform.machine())'); aarch64 wheels: $(echo $pins)"

# --- 3. the aarch64 wheel, built there from the checkout -----------------------
in_root sh -c 'cd /src && /opt/venv/bin/python -m build --wheel --no-isolation --outdir /dist' \
    > "$tmp/build.log" 2>&1 || { tail -n 40 "$tmp/build.log"; exit 1; }
wheel=$(cd "$root/dist" && ls edgepose-*.whl)
case "$wheel" in
    *-cp311-abi3-linux_aarch64.whl) ;;
    *) echo "arm64: expected a cp311-abi3 aarch64 wheel, got $wheel" >&2; exit 1 ;;
esac
in_root /opt/venv/bin/pip install -q --no-compile --no-deps "/dist/$wheel"
say "built and installed $wheel"

wait "$csrc_job" || { cat "$tmp/csrc.log"; echo "arm64: the C core's tests failed under qemu" >&2; exit 1; }
grep -q "argmax paths checked: scalar neon" "$tmp/csrc.log" || { cat "$tmp/csrc.log"; exit 1; }
grep -q "C core: all checks passed" "$tmp/csrc.log"
say "C core tests (cross-compiled, -O3) passed under qemu: $(grep 'argmax paths checked' "$tmp/csrc.log")"

# --- 4. the marked tests, against the installed wheel, beside 5. --------------
# Only tests/ and the pytest settings, so `import edgepose` is the wheel's; only
# the files that have marked tests (the rest need packages not installed here).
mkdir -p "$root/t"
cp -r "$root/src/tests" "$root/src/pyproject.toml" "$root/t/"
EDGEPOSE_SHARED=$shared "$host_python" tests/arm64_parity.py run "$tmp/x86_64.npz" > "$tmp/parity_x86.log" 2>&1 \
    || { cat "$tmp/parity_x86.log"; exit 1; }
in_root sh -c 'cd /t && /opt/venv/bin/python tests/arm64_parity.py run /t/aarch64.npz' \
    > "$tmp/parity.log" 2>&1 &
parity_job=$!
marked=$(cd "$root/t" && grep -rl --include='test_*.py' 'pytest.mark.arm64' tests | sort | tr '\n' ' ')
in_root sh -c "cd /t && /opt/venv/bin/python -m pytest -m arm64 -q -p no:cacheprovider --durations=5 $marked"
say "marked tests passed on aarch64"

# --- 5. x86-64 against aarch64 ---------------------------------------------------
wait "$parity_job" || { cat "$tmp/parity.log"; echo "arm64: tests/arm64_parity.py failed in the rootfs" >&2; exit 1; }
parity_job=
"$host_python" tests/arm64_parity.py compare "$tmp/x86_64.npz" "$root/t/aarch64.npz"
say "finished"
