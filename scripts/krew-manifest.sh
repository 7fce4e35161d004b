#!/usr/bin/env bash
# make krew: the kubectl plugin's krew archive and manifest.
#
#   scripts/krew-manifest.sh RELEASE_URL
#
# Packs bin/kubectl-vmdrain (built for linux-amd64 on this machine) and
# README.txt (the "kubectl plugin" section of README.md; the repository has
# no LICENSE file to ship) into build/krew/kubectl-vmdrain_v<VERSION>_linux_amd64.tar.gz,
# reproducibly (names sorted, mtime 0, owner 0, gzip without a name or a
# time), computes its sha256 and writes krew/vmdrain.yaml from
# krew/vmdrain.yaml.tmpl with the version from ./VERSION and the uri
# RELEASE_URL/<archive>. The archive is what is uploaded to RELEASE_URL: the
# manifest is only right for that very archive (docs/plugin.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $# -ne 1 || -z $1 || $1 != http*://* ]]; then
    echo "usage: $0 RELEASE_URL (https://HOST/.../v$(cat VERSION))" >&2
    exit 2
fi
url=${1%/}
version=$(tr -d '[:space:]' < VERSION)
bin=bin/kubectl-vmdrain
if [[ ! -x $bin ]]; then
    echo "krew-manifest: $bin is missing: run make first" >&2
    exit 1
fi
# the archive is for linux-amd64: the binary must be an x86-64 ELF
if [[ $(head -c 4 "$bin" | od -An -tx1 | tr -d ' \n') != 7f454c46 ||
      $(od -An -tu2 -j18 -N2 "$bin" | tr -d ' ') != 62 ]]; then
    echo "krew-manifest: $bin is not a linux-amd64 (x86-64 ELF) binary" >&2
    exit 1
fi

name=kubectl-vmdrain_v${version}_linux_amd64.tar.gz
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -m 0755 "$bin" "$stage/kubectl-vmdrain"
# the README section "kubectl plugin", up to the next section
awk '/^## kubectl plugin/{on=1; print; next} on && /^## /{exit} on' README.md > "$stage/README.txt"
if [[ ! -s $stage/README.txt ]]; then
    echo "krew-manifest: README.md has no section '## kubectl plugin'" >&2
    exit 1
fi
touch -d @0 "$stage/kubectl-vmdrain" "$stage/README.txt"
mkdir -p build/krew
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" \
    -cf - kubectl-vmdrain README.txt | gzip -n -9 > "build/krew/$name"
sha=$(sha256sum "build/krew/$name" | cut -d' ' -f1)

sed -e "s|@VERSION@|v$version|g" -e "s|@URI@|$url/$name|g" -e "s|@SHA256@|$sha|g" \
    krew/vmdrain.yaml.tmpl > krew/vmdrain.yaml
echo "build/krew/$name sha256 $sha"
echo "krew/vmdrain.yaml: version v$version, uri $url/$name"
