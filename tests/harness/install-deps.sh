#!/usr/bin/env bash
# install-deps.sh — installs everything walbridge needs to build, test and run the
# demo on Debian 12 (run as root).  Shared by .ci/run and deploy/demo.sh.
# Does not create or start the Debian default PostgreSQL cluster: the tests and
# the demo start their own throwaway clusters.
set -euo pipefail

WB_PACKAGES=(
    build-essential cmake pkg-config clang libclang-rt-14-dev
    libpq-dev libcjson-dev uuid-dev libcriterion-dev libmicrohttpd-dev
    postgresql-15 postgresql-15-wal2json postgresql-client-15
    python3 jq curl procps iproute2 ca-certificates openssl bc
)

if [[ $EUID -ne 0 ]]; then
    echo "install-deps.sh: run as root (apt-get install)" >&2
    exit 2
fi

missing=()
for p in "${WB_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "install-deps.sh: all packages present"
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Keep postgresql-common from creating (and starting) the default "main" cluster.
mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/walbridge.conf
# In containers without an init system, package scripts must not start services.
if [[ ! -d /run/systemd/system && ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

echo "install-deps.sh: installing ${missing[*]}"
apt-get update -qq
# With recommends: clang's sanitizer/libFuzzer runtimes and symbolizer come that way.
apt-get install -y -qq "${missing[@]}" >/dev/null
echo "install-deps.sh: done"
