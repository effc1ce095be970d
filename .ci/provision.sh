#!/usr/bin/env bash
# Provisions what the integration-test servers need (docs/testing.md):
#   - Debian packages: redis-server (Redis 7), prometheus (for promtool); java/mvn if missing
#   - Apache Kafka (KRaft) jars and Temporal test-server jars from Maven Central
#   - FerretDB 1.x (MongoDB wire protocol, SQLite backend) built from the Go module proxy
#   - Jaeger v1 all-in-one (OTLP in, query API out) and helm v3, built from the Go module proxy
#   - etcd 3.6 and Kubernetes 1.34 (kube-apiserver, kubectl), built from the Go module proxy, with the
#     prometheus-operator CRDs (ServiceMonitor, PrometheusRule) from the same proxy: the chart's server-side dry run
#   - Debian's chromium, for the browser test of the breaker board (driven by playwright-core)
#   - Podman and the container base the image test builds on (.ci/image-base.sh: a Debian minbase rootfs,
#     the pinned Node 24 and an exact npm; cached as image-base-<key>)
#
# Downloads go to a cache OUTSIDE the clone:
#   ${NH_CACHE_DIR:-$HOME/.cache/neural-hive}/<server>-<key>/
# where <key> is the first 16 hex digits of the sha256 of the server's input files,
# concatenated in this order (tools/rig/servers.ts computes the same key):
#   kafka    : tools/rig/poms/kafka/pom.xml
#   temporal : tools/rig/poms/temporal/pom.xml tools/rig/launchers/TemporalLauncher.java
#   ferretdb : tools/rig/ferretdb/go.mod tools/rig/ferretdb/go.sum tools/rig/ferretdb/main.go
#   jaeger   : tools/rig/jaeger/go.mod tools/rig/jaeger/go.sum
#   helm     : tools/rig/helm/go.mod tools/rig/helm/go.sum
#   etcd     : tools/rig/etcd/go.mod tools/rig/etcd/go.sum
#   kube     : tools/rig/kube/go.mod tools/rig/kube/go.sum tools/rig/kube/prometheus-operator-crds.txt
# A directory counts as complete only when it holds the marker file `.complete`; it is
# built under a temporary name and renamed, so an interrupted run leaves nothing half-done.
# Idempotent: a second run only checks and prints (a few seconds).
#
# Usage: bash .ci/provision.sh            provision, then print the paths
#        bash .ci/provision.sh --paths    print the paths only (no install, no download)
set -euo pipefail

started=$SECONDS
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
svc="$root/tools/rig"
# os.homedir() in servers.ts falls back to the passwd entry too; Go needs HOME for its caches
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
cache="${NH_CACHE_DIR:-$HOME/.cache/neural-hive}"

say() { echo "provision: $*" >&2; }
die() {
  echo "provision: ERROR: $*" >&2
  exit 1
}

# key FILE... -> first 16 hex digits of sha256 over the files' bytes, concatenated
key() { cat "$@" | sha256sum | cut -c1-16; }

kafka_dir="$cache/kafka-$(key "$svc/poms/kafka/pom.xml")"
temporal_dir="$cache/temporal-$(key "$svc/poms/temporal/pom.xml" "$svc/launchers/TemporalLauncher.java")"
ferretdb_dir="$cache/ferretdb-$(key "$svc/ferretdb/go.mod" "$svc/ferretdb/go.sum" "$svc/ferretdb/main.go")"
jaeger_dir="$cache/jaeger-$(key "$svc/jaeger/go.mod" "$svc/jaeger/go.sum")"
helm_dir="$cache/helm-$(key "$svc/helm/go.mod" "$svc/helm/go.sum")"
etcd_dir="$cache/etcd-$(key "$svc/etcd/go.mod" "$svc/etcd/go.sum")"
kube_dir="$cache/kube-$(key "$svc/kube/go.mod" "$svc/kube/go.sum" "$svc/kube/prometheus-operator-crds.txt")"

print_paths() {
  echo "NH_CACHE_DIR=$cache"
  echo "NH_KAFKA_DIR=$kafka_dir"
  echo "NH_TEMPORAL_DIR=$temporal_dir"
  echo "NH_FERRETDB_DIR=$ferretdb_dir"
  echo "NH_REDIS_SERVER=$(command -v redis-server || echo missing)"
  echo "NH_PROMTOOL=$(command -v promtool || echo missing)"
  echo "NH_JAEGER_DIR=$jaeger_dir"
  echo "NH_HELM_DIR=$helm_dir"
  echo "NH_ETCD_DIR=$etcd_dir"
  echo "NH_KUBE_DIR=$kube_dir"
  echo "NH_CHROMIUM=$(command -v chromium || echo missing)"
}

if [[ "${1:-}" == "--paths" ]]; then
  print_paths
  exit 0
fi

# ---------------------------------------------------------------- Debian packages
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
{ command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1; } || need+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]} > 0)); then
  say "installing Debian packages: ${need[*]}"
  [[ $(id -u) -eq 0 ]] || die "need root for apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[[ -n "$java_major" && "$java_major" -ge 17 ]] || die "Java 17+ required (found: ${java_major:-none})"

mkdir -p "$cache"

# finish TMP DIR: mark TMP complete and move it to DIR (a concurrent run may have won the race)
finish() {
  local tmp=$1 dir=$2
  date -u +%FT%TZ >"$tmp/.complete"
  if ! mv -T "$tmp" "$dir" 2>/dev/null; then
    rm -rf "$tmp"
    [[ -f "$dir/.complete" ]] || die "could not move $tmp to $dir"
  fi
}

# ---------------------------------------------------------------- jars (Maven Central)
fetch_jars() {
  local name=$1 pom=$2 dir=$3
  if [[ -f "$dir/.complete" ]]; then
    say "$name: cached"
    return
  fi
  rm -rf "$dir"
  local tmp="$dir.partial.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  say "$name: fetching jars with Maven (${pom#"$root"/})"
  if ! mvn -q -B -Dstyle.color=never -f "$pom" org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies \
    -DoutputDirectory="$tmp/libs" -DincludeScope=runtime >"$tmp/mvn.log" 2>&1; then
    cat "$tmp/mvn.log" >&2
    die "$name: maven could not fetch the jars"
  fi
  ls "$tmp"/libs/*.jar >/dev/null 2>&1 || die "$name: no jars fetched"
  if [[ "$name" == temporal ]]; then
    mkdir -p "$tmp/classes"
    javac -nowarn -d "$tmp/classes" -cp "$tmp/libs/*" "$svc/launchers/TemporalLauncher.java" ||
      die "temporal: could not compile TemporalLauncher.java"
  fi
  finish "$tmp" "$dir"
}

fetch_jars kafka "$svc/poms/kafka/pom.xml" "$kafka_dir"
fetch_jars temporal "$svc/poms/temporal/pom.xml" "$temporal_dir"

# ---------------------------------------------------------------- FerretDB (Go module proxy)
if [[ -f "$ferretdb_dir/.complete" ]]; then
  say "ferretdb: cached"
else
  go_bin=$(command -v go || true)
  [[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
  [[ -n "$go_bin" ]] || die "ferretdb: Go 1.24+ is required to build FerretDB (go not found)"
  go_minor=$("$go_bin" env GOVERSION | sed -n 's/^go1\.\([0-9]*\).*/\1/p')
  [[ -n "$go_minor" && "$go_minor" -ge 24 ]] || die "ferretdb: Go 1.24+ required (found $("$go_bin" env GOVERSION))"
  rm -rf "$ferretdb_dir"
  tmp="$ferretdb_dir.partial.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  say "ferretdb: building with $("$go_bin" env GOVERSION) (first time: about 1-3 minutes)"
  (cd "$svc/ferretdb" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    "$go_bin" build -trimpath -o "$tmp/bin/nh-ferretdb" .) || die "ferretdb: go build failed"
  finish "$tmp" "$ferretdb_dir"
fi

# ---------------------------------------------------------------- Go tools: Jaeger, helm, etcd, Kubernetes (Go module proxy)
go_bin() {
  local bin
  bin=$(command -v go || true)
  [[ -z "$bin" && -x /usr/local/go/bin/go ]] && bin=/usr/local/go/bin/go
  [[ -n "$bin" ]] || die "$1: Go is required to build it (go not found)"
  echo "$bin"
}

# go_build NAME PACKAGE OUT [LDFLAGS]: builds PACKAGE of the tool module tools/rig/NAME (its go.mod and
# go.sum pin every module: nothing is resolved) into the file OUT
go_build() {
  local name=$1 package=$2 out=$3 ldflags=${4:-}
  local go
  go=$(go_bin "$name")
  say "$name: building $package with $("$go" env GOVERSION) (first time: a few minutes)"
  (cd "$svc/$name" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    "$go" build -trimpath ${ldflags:+-ldflags="$ldflags"} -o "$out" "$package") || die "$name: go build of $package failed"
}

# go_tool NAME PACKAGE DIR: builds the tool module tools/rig/NAME (its go.mod pins PACKAGE) into DIR/bin/NAME
go_tool() {
  local name=$1 package=$2 dir=$3
  if [[ -f "$dir/.complete" ]]; then
    say "$name: cached"
    return
  fi
  rm -rf "$dir"
  local tmp="$dir.partial.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  go_build "$name" "$package" "$tmp/bin/$name"
  finish "$tmp" "$dir"
}

go_tool jaeger github.com/jaegertracing/jaeger/cmd/jaeger "$jaeger_dir"
go_tool helm helm.sh/helm/v3/cmd/helm "$helm_dir"
go_tool etcd go.etcd.io/etcd/server/v3 "$etcd_dir"

# Kubernetes: kube-apiserver and kubectl of k8s.io/kubernetes (tools/rig/kube/go.mod replaces its ./staging
# modules with their published versions), stamped with their release (helm's kubeVersion checks read it), and
# the CRDs of tools/rig/kube/prometheus-operator-crds.txt in crds/. First time: about 6 min, 1.8 GB of RAM.
if [[ -f "$kube_dir/.complete" ]]; then
  say "kube: cached"
else
  rm -rf "$kube_dir"
  tmp="$kube_dir.partial.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin" "$tmp/crds"
  k8s_version=$(cd "$svc/kube" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly "$(go_bin kube)" list -m -f '{{.Version}}' k8s.io/kubernetes) ||
    die "kube: tools/rig/kube/go.mod does not require k8s.io/kubernetes"
  [[ "$k8s_version" =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] || die "kube: k8s.io/kubernetes $k8s_version is not a release version"
  k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version"
  k8s_ldflags+=" -X k8s.io/component-base/version.gitMajor=${BASH_REMATCH[1]} -X k8s.io/component-base/version.gitMinor=${BASH_REMATCH[2]}"
  go_build kube k8s.io/kubernetes/cmd/kube-apiserver "$tmp/bin/kube-apiserver" "$k8s_ldflags"
  go_build kube k8s.io/kubernetes/cmd/kubectl "$tmp/bin/kubectl" "$k8s_ldflags"
  pin="$svc/kube/prometheus-operator-crds.txt"
  crd_module=$(awk '$1 == "module" { print $2 }' "$pin")
  crd_version=$(awk '$1 == "version" { print $2 }' "$pin")
  crd_sum=$(awk '$1 == "sum" { print $2 }' "$pin")
  say "kube: downloading $crd_module@$crd_version (CRDs)"
  # Outside any module (so no go.mod is touched); the download is checked against the checksum database.
  crd_json=$(cd "$tmp" && GOTOOLCHAIN=local GOFLAGS= GO111MODULE=on "$(go_bin kube)" mod download -json "$crd_module@$crd_version") ||
    die "kube: could not download $crd_module@$crd_version: $crd_json"
  got_sum=$(sed -n 's/^\t"Sum": "\(.*\)",$/\1/p' <<<"$crd_json")
  [[ "$got_sum" == "$crd_sum" ]] || die "kube: $crd_module@$crd_version has sum '$got_sum', the pin says '$crd_sum'"
  crd_dir=$(sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$crd_json")
  for file in $(awk '$1 == "file" { print $2 }' "$pin"); do
    [[ -f "$crd_dir/$file" ]] || die "kube: $crd_module@$crd_version has no $file"
    cp "$crd_dir/$file" "$tmp/crds/" && chmod u+w "$tmp/crds/$(basename "$file")"
  done
  finish "$tmp" "$kube_dir"
fi

# ---------------------------------------------------------------- the container image's base (Podman)
bash "$root/.ci/image-base.sh"

# ---------------------------------------------------------------- report
print_paths | tee "$cache/paths.env"
say "done in $((SECONDS - started)) s"
