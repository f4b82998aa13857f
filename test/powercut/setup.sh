# Sourced by run.sh: everything the power-cut harness needs, installed from
# Debian's packages and cached between runs (docs/powercut.md).
#   pc_packages            qemu-system-x86, busybox-static, e2fsprogs, kmod, xz, cpio
#   pc_kernel              $PC_CACHE/vmlinux and $PC_CACHE/modules/*.ko
#   pc_build DIR           host and guest binaries (normal and canary build)
#   pc_initrd DIR BIN OUT  an initramfs whose modelslot is BIN
#   pc_base_image OUT      an ext4 image with v1 installed

# Modules the guest loads, in this order (the package ships no modules.dep).
PC_MODULES="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
	virtio_blk crc32c_generic crc16 mbcache jbd2 ext4"

pc_log() { printf 'powercut: %s\n' "$*" >&2; }

pc_apt_updated=
pc_apt() {
	# `apt-get update` once, and only when something is missing.
	if [ -z "$pc_apt_updated" ]; then
		apt-get update -qq >&2
		pc_apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

pc_packages() {
	local missing=() p
	for p in qemu-system-x86 busybox-static e2fsprogs kmod xz-utils cpio; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return
	pc_log "installing ${missing[*]}"
	pc_apt "${missing[@]}"
}

# pc_kernel fetches Debian's current amd64 kernel once and keeps only what the
# guest boots: the decompressed vmlinux (booted directly through PVH, about
# twice as fast as the bzImage under emulation) and the modules it loads.
pc_kernel() {
	[ -s "$PC_CACHE/vmlinux" ] && [ -s "$PC_CACHE/modules/ext4.ko" ] && return
	mkdir -p "$PC_CACHE"
	local tmp pkg vmlinuz off m
	tmp=$(mktemp -d "$PC_CACHE/kernel.XXXXXX")
	pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	if [ -z "$pkg" ]; then
		apt-get update -qq >&2; pc_apt_updated=1
		pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
	fi
	[ -n "$pkg" ] || { pc_log "cannot find the kernel package behind linux-image-amd64"; return 1; }
	pc_log "downloading $pkg (once; cached in $PC_CACHE)"
	(cd "$tmp" && apt-get download "$pkg" >&2 2>/dev/null) || (cd "$tmp" && apt-get download "$pkg" >&2)
	dpkg-deb -x "$tmp"/*.deb "$tmp/x"
	vmlinuz=$(ls "$tmp"/x/boot/vmlinuz-*)
	# vmlinuz is a boot stub followed by an XZ stream of vmlinux.
	off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | head -1 | cut -d: -f1)
	[ -n "$off" ] || { pc_log "no XZ stream in $vmlinuz"; return 1; }
	tail -c +$((off + 1)) "$vmlinuz" | xz -dcq --single-stream > "$tmp/vmlinux" || true
	[ -s "$tmp/vmlinux" ] || { pc_log "could not extract vmlinux from $vmlinuz"; return 1; }
	mkdir -p "$tmp/modules"
	for m in $PC_MODULES; do
		cp "$(find "$tmp"/x/lib/modules -name "$m.ko" | head -1)" "$tmp/modules/" ||
			{ pc_log "module $m.ko not in $pkg"; return 1; }
	done
	rm -rf "$PC_CACHE/modules"
	mv "$tmp/modules" "$PC_CACHE/modules"
	mv "$tmp/vmlinux" "$PC_CACHE/vmlinux"
	echo "$pkg" > "$PC_CACHE/kernel-package"
	rm -rf "$tmp"
}

# pc_build puts static binaries in DIR: modelslot (real), modelslot-nofsync
# (the canary: every fsync of internal/durable switched off), driver, check.
pc_build() {
	local out=$1
	mkdir -p "$out"
	(
		cd "$PC_ROOT"
		export CGO_ENABLED=0
		go build -trimpath -o "$out/modelslot" ./cmd/modelslot
		go build -trimpath -tags modelslot_nofsync -o "$out/modelslot-nofsync" ./cmd/modelslot
		go build -trimpath -o "$out/driver" ./test/powercut/driver
		go build -trimpath -o "$out/check" ./test/powercut/check
	)
}

# pc_initrd builds an uncompressed initramfs (the kernel unpacks it faster than
# a gzipped one under emulation) holding busybox, the modules, BIN as
# /bin/modelslot, the driver and the guest's config.
pc_initrd() {
	local bin=$1 modelslot=$2 out=$3 stage m
	stage=$(mktemp -d "$PC_WORK/initrd.XXXXXX")
	mkdir -p "$stage"/{bin,lib/modules,etc,proc,sys,dev,mnt,models,tmp}
	cp /bin/busybox "$stage/bin/busybox"
	for m in $PC_MODULES; do cp "$PC_CACHE/modules/$m.ko" "$stage/lib/modules/"; done
	cp "$modelslot" "$stage/bin/modelslot"
	cp "$bin/driver" "$stage/driver"
	cp "$PC_HERE/init" "$stage/init"
	chmod 755 "$stage/init"
	printf 'device_id = "powercut-guest"\nstate_root = "/mnt/ms"\n\n[[model]]\nname = "demo"\n' > "$stage/etc/modelslot.toml"
	(cd "$stage" && find . | cpio -o -H newc --quiet) > "$out"
	rm -rf "$stage"
}

# pc_base_image makes the disk every cut starts from: a fresh ext4 with v1
# installed and active, so the link exists from the first moment.
pc_base_image() {
	local out=$1 mnt=$PC_WORK/base-mnt cfg=$PC_WORK/base.toml
	rm -f "$out"
	truncate -s 128M "$out"
	mkfs.ext4 -q -F "$out"
	mkdir -p "$mnt"
	mount -o loop "$out" "$mnt"
	"$PC_BIN/driver" gen "$PC_WORK/models"
	printf 'device_id = "powercut-host"\nstate_root = "%s/ms"\n\n[[model]]\nname = "demo"\n' "$mnt" > "$cfg"
	"$PC_BIN/modelslot" --config "$cfg" install --insecure --label v1 "$PC_WORK/models/v1" >&2 ||
		{ umount "$mnt"; return 1; }
	umount "$mnt"
}
