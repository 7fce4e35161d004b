#!/usr/bin/env bash
# Installs the Debian packages vmdrain needs to build, test and lint, but only
# those that are missing: `apt-get update` runs only when something must be
# installed, so a second run is a no-op that touches nothing.
set -euo pipefail

packages=(
    build-essential     # gcc, make
    pkg-config          # compiler flags of the libraries below
    libcurl4-openssl-dev # HTTP client (libcurl, OpenSSL backend: in-memory certs)
    libssl-dev          # TLS for the webhook server (same stack as libcurl's)
    libhttp-parser-dev  # HTTP/1.1 request parsing for the webhook server
    libyajl-dev         # streaming JSON
    libev-dev           # the event loop
    libyaml-dev         # kubeconfig and configuration YAML
    libcriterion-dev    # unit tests
    clang-format        # make lint
    cppcheck            # make lint
    valgrind            # make valgrind-unit
    openssl             # certificates for tests and the test bed
    curl                # test bed readiness checks
)

missing=()
for p in "${packages[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

echo "deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
