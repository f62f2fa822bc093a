# pyrunc: the two commands (as root on a fresh Debian 12 machine)
#   make demo           install everything, run a real busybox container
#   make demo-engines   install everything, the tutorials' story with buildah + podman on pyrunc
#   make demo-k8s       install everything, the kubelet's CRI calls on containerd with pyrunc and runc
#   make test           install everything, run the test suite
SHELL := /bin/bash
PYTHON ?= /usr/bin/python3
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
PYRUNC := $(VENV)/bin/pyrunc
APT_PACKAGES := build-essential pkg-config python3-venv python3-dev libseccomp-dev \
	busybox-static runc crun iproute2 util-linux procps nftables \
	containerd podman conmon buildah umoci skopeo containernetworking-plugins \
	systemd dbus $(CRIU_LIBS)
# What ../shared/tools/criu/criu (CRIU 4.2, checkpoint/restore) links against,
# and iptables for its default network locking.
CRIU_LIBS := libbsd0 libgnutls30 libnftables1 libprotobuf-c1 libnl-3-200 libnet1 libuuid1 iptables
DEMO_DIR ?= /tmp/pyrunc-demo
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: all deps venv demo demo-engines demo-k8s test unit bench clean old-criu

all: venv

deps: .stamp-apt
.stamp-apt:
	@if ! command -v busybox >/dev/null || ! dpkg -s libseccomp-dev runc crun python3-venv containerd podman conmon buildah containernetworking-plugins nftables systemd dbus $(CRIU_LIBS) >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi
	@touch $@

# The venv gets a regular (not editable) install: what CI and the benchmark
# measure is what users get.
venv: deps $(PYRUNC)
$(PYRUNC): pyproject.toml setup.py $(wildcard _native/*) $(wildcard pyrunc/*.py pyrunc/*/*.py)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip setuptools wheel cffi >/dev/null
	@$(PY) -m pip install -q '.[test]'
	@touch $(PYRUNC)

demo: venv
	@rm -rf $(DEMO_DIR) && mkdir -p $(DEMO_DIR)/rootfs/bin
	@cp "$$(command -v busybox)" $(DEMO_DIR)/rootfs/bin/busybox
	@for a in $$($(DEMO_DIR)/rootfs/bin/busybox --list); do [ "$$a" = busybox ] || ln -sf busybox $(DEMO_DIR)/rootfs/bin/$$a; done
	@mkdir -p $(DEMO_DIR)/rootfs/{proc,sys,dev,etc,tmp}
	@echo 'root:x:0:0:root:/root:/bin/sh' > $(DEMO_DIR)/rootfs/etc/passwd
	@$(PYRUNC) spec --bundle $(DEMO_DIR)
	@$(PY) -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["process"]["terminal"]=False; \
		c["process"]["args"]=["sh","-c","echo \"hello from $$(hostname), pid $$$$ in its own namespaces\"; id; uname -a; ls /"]; \
		c["linux"]["cgroupsPath"]="/pyrunc-demo/demo"; \
		json.dump(c,open(p,"w"),indent=2)' $(DEMO_DIR)/config.json
	@echo "+ pyrunc run --bundle $(DEMO_DIR) pyrunc-demo"
	@$(PYRUNC) --root $(DEMO_DIR)/state run --bundle $(DEMO_DIR) pyrunc-demo
	@$(PYRUNC) --root $(DEMO_DIR)/state list
	@rm -rf $(DEMO_DIR)
	@for d in /sys/fs/cgroup/*/pyrunc-demo; do [ -d "$$d" ] && rmdir "$$d"; done; true
	@echo "demo done: nothing left behind"

# The tutorials' scenario (tests/engines/scenario.py, also a test): buildah
# builds an image whose RUN steps pyrunc runs, podman serves it on a bridge
# inside a network namespace the demo makes; every step is shown and
# checked, then everything is removed and the host checked unchanged.
demo-engines: venv
	@cd tests && PYTHONDONTWRITEBYTECODE=1 $(PY) -m engines.scenario --runtime $(PYRUNC)

# What a Kubernetes node does through CRI (tests/engines/cri_flow.py, also
# a test): a private containerd with the CRI plugin in a network namespace
# the demo makes, runtime handlers pyrunc and runc; pods and containers
# run, exec'd, updated, stopped and removed, every step checked from the
# kernel; then everything is removed.
demo-k8s: venv
	@cd tests && PYTHONDONTWRITEBYTECODE=1 $(PY) -m engines.cri_flow runc=$$(command -v runc) pyrunc=$(PYRUNC)

# pytest's own script (not `python -m pytest`) keeps the source tree off
# sys.path, so the tests exercise the installed package.
test: venv old-criu
	$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS) tests

# Debian 12's own criu 3.17.1, unpacked under .cache (not installed, not on
# PATH): a real criu too old for this kernel (`criu check` fails), for the
# checkpoint tests' error case.  Without it that one test skips and says so.
OLD_CRIU := $(CURDIR)/.cache/criu-3.17/usr/sbin/criu
old-criu: $(OLD_CRIU)
$(OLD_CRIU):
	@rm -rf .cache/criu-deb && mkdir -p .cache/criu-deb
	@cd .cache/criu-deb && apt-get download -q criu >/dev/null 2>&1 && \
		dpkg-deb -x criu_*.deb $(CURDIR)/.cache/criu-3.17 || echo "Debian's criu not fetched: its checkpoint test will skip"
	@rm -rf .cache/criu-deb

unit: venv
	$(VENV)/bin/pytest -p no:cacheprovider $(PYTEST_ARGS) tests/unit

bench: venv
	$(PY) bench/bench.py --pyrunc $(PYRUNC) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .stamp-apt .cache
