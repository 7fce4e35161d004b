#!/usr/bin/env bash
# make image: builds the vmdrain image with the local Docker engine. No image
# can be pulled here, so the Containerfile's base images are first made from
# Debian's packages (debootstrap minbase + docker import) when missing; the
# Containerfile itself stays the standard one.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(cat VERSION)
tag=${VMDRAIN_IMAGE:-vmdrain:$version}

if ! docker image inspect debian:bookworm >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2 ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >&2; }
    }
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs"' EXIT
    echo "image: making debian:bookworm from Debian's packages (debootstrap minbase)" >&2
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import - debian:bookworm >/dev/null
fi
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
built=$(git log -1 --format=%cI 2>/dev/null || echo unknown)
docker build -f Containerfile --build-arg VMDRAIN_REVISION="$revision" --build-arg VMDRAIN_VERSION="$version" \
    --build-arg VMDRAIN_BUILD_DATE="$built" \
    -t "$tag" . >&2
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "image: $tag, $((size / 1024 / 1024)) MiB ($size bytes)" >&2
echo "$tag"
