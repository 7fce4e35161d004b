#!/usr/bin/env bash
# make release: what a release publishes, into dist/ — the chart package
# (helm package, the version from VERSION, which Chart.yaml must match), the
# image vmdrain:VERSION (make image) saved as a docker archive, and the
# binaries with SHA-256 sums. Publishing them (a registry, a chart
# repository) is left to whoever releases.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(cat VERSION)
chart=charts/vmdrain/Chart.yaml
for key in version appVersion; do
    got=$(sed -n "s/^$key: *\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$chart")
    [[ $got == "$version" ]] || { echo "release: $chart $key is '$got', VERSION is '$version'" >&2; exit 1; }
done
helm=${HELM:-$(command -v helm || ls -d "$HOME"/.cache/vmdrain/testbed/helm-*/helm 2>/dev/null | tail -1)}
[[ -x $helm ]] || { echo "release: no helm (set HELM=PATH, or make testbed builds one)" >&2; exit 1; }
rm -rf dist && mkdir -p dist
"$helm" lint --strict charts/vmdrain >&2
"$helm" package charts/vmdrain -d dist >&2
tag=$(VMDRAIN_IMAGE=vmdrain:$version bash scripts/image.sh | tail -1)
docker save "$tag" -o "dist/vmdrain-image-$version.tar"
cp bin/vmdrain "dist/vmdrain-$version-linux-amd64"
cp bin/kubectl-vmdrain "dist/kubectl-vmdrain-$version-linux-amd64"
(cd dist && sha256sum -- * >SHA256SUMS)
echo "release $version:" >&2
(cd dist && ls -l --block-size=K -- *) >&2
