# rastOS: the common entry points. A newcomer needs two of them (see README.md):
#   make image   installs what is needed, builds the default recipe and boots it in QEMU
#   make test    installs what is needed and runs every test
.PHONY: deps build release image test bench fmt lint clean

SWIFT ?= swift
RECIPE ?= recipes/minimal.toml
RELEASE_FLAGS = -c release --static-swift-stdlib

# Debian packages for building, testing and running the pipeline.
DEB_PACKAGES = \
	pkg-config libbtrfsutil-dev libalpm-dev libgpgme-dev libfdisk-dev libblkid-dev libarchive-dev \
	libcurl4-openssl-dev libgit2-dev zlib1g-dev libzstd-dev libssl-dev \
	btrfs-progs dosfstools mtools fdisk gdisk util-linux grub-pc-bin grub-efi-amd64-bin grub2-common \
	ovmf qemu-system-x86 qemu-utils pacman-package-manager makepkg arch-install-scripts libarchive-tools \
	archlinux-keyring busybox-static linux-source-6.1 bc flex bison libelf-dev build-essential cpio kmod \
	git gnupg zstd xz-utils python3 hyperfine curl s6 dropbear-bin patchelf openssh-client

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make deps installs Debian packages: run it as root"; exit 1; fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEB_PACKAGES)

# Debug build of everything (what the tests use).
build:
	$(SWIFT) build

# The binaries that go into images and the release tools: no Swift shared libraries needed.
release:
	$(SWIFT) build $(RELEASE_FLAGS)

# The main job: the default recipe built into output/ and boot-tested under BIOS and UEFI.
image: deps release
	.build/release/rast-build $(RECIPE)

# Every test. The image tests put the release rast binary into images, so it is built first.
test: deps
	$(SWIFT) build $(RELEASE_FLAGS) --product rast
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

bench: deps release
	bench/run-all

fmt lint:
	@echo "no formatter is configured; swift build treats warnings seriously instead"
	$(SWIFT) build 2>&1 | grep -E "warning:" && exit 1 || true

clean:
	rm -rf .build output/*.raw output/*.qcow2 output/*.json output/SHA256SUMS output/logs
