#!/usr/bin/env bash
# Install what mwan needs on a Debian machine (run as root): the Debian
# packages, then a venv built from the system Python so that Debian's
# python3-nftables binding is importable, with mwan and its test tools.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(nftables python3-nftables python3-systemd iproute2 conntrack python3-venv iptables iperf3 procps iputils-ping curl chromium chromium-driver keepalived conntrackd
    fakeroot binutils lintian dnsmasq-base udhcpc prometheus zsh)  # the package build, DHCP lab, promtool, zsh completion test
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # the tests run keepalived, conntrackd, dnsmasq and promtool themselves, inside lab
    # namespaces: keep the packages' own services from starting on this host
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt-get update -qq
    # (promtool is all the tests need of prometheus: not its node exporter)
    apt-get install -y -qq "${missing[@]}" prometheus-node-exporter- >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import nftables' 2>/dev/null; then
    rm -rf .venv
    /usr/bin/python3 -m venv --system-site-packages .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/python -c 'import nftables, pyroute2' || { echo "setup failed: nftables/pyroute2 not importable" >&2; exit 1; }
