#!/usr/bin/env bash
# Makes the container base the image test (test/deploy/image.test.ts) builds the Dockerfile on, with
# Podman (no daemon, no registry: none is reachable here). Called by .ci/provision.sh; idempotent.
#   1. Debian packages podman, buildah, runc, mmdebstrap, catatonit (when missing);
#   2. $cache/containers.conf: runc, cgroupfs, a file events logger, this host's nofile limit;
#   3. a Debian minbase rootfs (mmdebstrap, ~170 MB, cached as a tar under $cache/image-base-<key>),
#      imported as localhost/nh-debian:<key>;
#   4. localhost/nh-node:24-<key>: that rootfs, the repository's pinned Node 24 binary and the exact npm
#      of tools/rig/image/versions.env (tools/rig/image/Containerfile.node).
# Writes $cache/image.env (CONTAINERS_CONF, NODE_IMAGE) for the test. <key>: the hash of versions.env,
# Containerfile.node and the Node version.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${NH_CACHE_DIR:-$HOME/.cache/neural-hive}"
dir="$root/tools/rig/image"
say() { echo "image-base: $*" >&2; }
die() {
  echo "image-base: ERROR: $*" >&2
  exit 1
}

need=()
for tool in podman buildah runc mmdebstrap; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
# `podman run --init` (the image test) needs podman's init, catatonit: Debian's podman only recommends it, so a
# podman installed without recommends lacks it ("container-init binary not found").
[[ -e /usr/libexec/podman/catatonit ]] || need+=(catatonit)
if ((${#need[@]} > 0)); then
  say "installing Debian packages: ${need[*]}"
  [[ $(id -u) -eq 0 ]] || die "need root for apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

node_bin="$root/node_modules/node/bin/node"
[[ -x "$node_bin" ]] || die "no pinned Node at $node_bin: run npm ci first"
node_version=$("$node_bin" --version)
# shellcheck source=/dev/null
source "$dir/versions.env"
key=$( (cat "$dir/versions.env" "$dir/Containerfile.node"; echo "$node_version") | sha256sum | cut -c1-16)

mkdir -p "$cache"
conf="$cache/containers.conf"
cat >"$conf" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$conf"

base_dir="$cache/image-base-$key"
if [[ -f "$base_dir/.complete" ]]; then
  say "rootfs: cached"
else
  say "rootfs: mmdebstrap --variant=minbase $DEBIAN_SUITE (about 30 s)"
  tmp="$base_dir.partial.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  mmdebstrap --quiet --variant=minbase "$DEBIAN_SUITE" "$tmp/rootfs.tar" "deb $DEBIAN_MIRROR $DEBIAN_SUITE main" ||
    die "mmdebstrap failed"
  (cd "$tmp" && npm pack --silent "npm@$NPM_VERSION" >/dev/null) || die "npm pack npm@$NPM_VERSION failed"
  date -u +%FT%TZ >"$tmp/.complete"
  rm -rf "$base_dir" && mv "$tmp" "$base_dir"
fi

debian="localhost/nh-debian:$key"
node_image="localhost/nh-node:24-$key"
if podman image exists "$node_image"; then
  say "$node_image: present"
else
  podman image exists "$debian" || podman import --quiet "$base_dir/rootfs.tar" "$debian" >/dev/null
  context=$(mktemp -d)
  trap 'rm -rf "$context"' EXIT
  cp "$node_bin" "$context/node"
  mkdir -p "$context/npm"
  tar -xzf "$base_dir/npm-$NPM_VERSION.tgz" -C "$context/npm" --strip-components=1
  say "building $node_image (Node $node_version, npm $NPM_VERSION)"
  podman build --quiet --network none --build-arg "BASE=$debian" -t "$node_image" \
    -f "$dir/Containerfile.node" "$context" >/dev/null || die "podman build of $node_image failed"
fi

printf 'CONTAINERS_CONF=%s\nNODE_IMAGE=%s\n' "$conf" "$node_image" >"$cache/image.env"
say "ready: $node_image ($(podman image inspect --format '{{.Size}}' "$node_image" | awk '{printf "%.0f MB", $1/1e6}'))"
