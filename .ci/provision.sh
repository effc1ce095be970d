#!/usr/bin/env bash
# Provisions what the integration-test servers need (docs/testing.md):
#   - Debian packages: redis-server (Redis 7), prometheus (for promtool); java/mvn if missing
#   - Apache Kafka (KRaft) jars and Temporal test-server jars from Maven Central
#   - FerretDB 1.x (MongoDB wire protocol, SQLite backend) built from the Go module proxy
#   - Jaeger v1 all-in-one (OTLP in, query API out) and helm v3, built from the Go module proxy
#   - Debian's chromium, for the browser test of the breaker board (driven by playwright-core)
#   - Podman and the container base the image test builds on (.ci/image-base.sh: a Debian minbase rootfs,
#     the pinned Node 24 and an exact npm; cached as image-base-<key>)
#
# Downloads go to a cache OUTSIDE the clone:
#   ${NH_CACHE_DIR:-$HOME/.cache/neural-hive}/<server>-<key>/
# where <key> is the first 16 hex digits of the sha256 of the server's input files,
# concatenated in this order (test/services/servers.ts computes the same key):
#   kafka    : test/services/poms/kafka/pom.xml
#   temporal : test/services/poms/temporal/pom.xml test/services/launchers/TemporalLauncher.java
#   ferretdb : test/services/ferretdb/go.mod test/services/ferretdb/go.sum test/services/ferretdb/main.go
#   jaeger   : test/services/jaeger/go.mod test/services/jaeger/go.sum
#   helm     : test/services/helm/go.mod test/services/helm/go.sum
# A directory counts as complete only when it holds the marker file `.complete`; it is
# built under a temporary name and renamed, so an interrupted run leaves nothing half-done.
# Idempotent: a second run only checks and prints (a few seconds).
#
# Usage: bash .ci/provision.sh            provision, then print the paths
#        bash .ci/provision.sh --paths    print the paths only (no install, no download)
set -euo pipefail

started=$SECONDS
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
svc="$root/test/services"
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

print_paths() {
  echo "NH_CACHE_DIR=$cache"
  echo "NH_KAFKA_DIR=$kafka_dir"
  echo "NH_TEMPORAL_DIR=$temporal_dir"
  echo "NH_FERRETDB_DIR=$ferretdb_dir"
  echo "NH_REDIS_SERVER=$(command -v redis-server || echo missing)"
  echo "NH_PROMTOOL=$(command -v promtool || echo missing)"
  echo "NH_JAEGER_DIR=$jaeger_dir"
  echo "NH_HELM_DIR=$helm_dir"
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

# ---------------------------------------------------------------- Jaeger and helm (Go module proxy)
# go_tool NAME PACKAGE DIR: builds the tool module test/services/NAME (its go.mod pins PACKAGE) into DIR/bin/NAME
go_tool() {
  local name=$1 package=$2 dir=$3
  if [[ -f "$dir/.complete" ]]; then
    say "$name: cached"
    return
  fi
  local go_bin
  go_bin=$(command -v go || true)
  [[ -z "$go_bin" && -x /usr/local/go/bin/go ]] && go_bin=/usr/local/go/bin/go
  [[ -n "$go_bin" ]] || die "$name: Go is required to build $package (go not found)"
  rm -rf "$dir"
  local tmp="$dir.partial.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  say "$name: building $package with $("$go_bin" env GOVERSION) (first time: a few minutes)"
  (cd "$svc/$name" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly \
    "$go_bin" build -trimpath -o "$tmp/bin/$name" "$package") || die "$name: go build failed"
  finish "$tmp" "$dir"
}

go_tool jaeger github.com/jaegertracing/jaeger/cmd/jaeger "$jaeger_dir"
go_tool helm helm.sh/helm/v3/cmd/helm "$helm_dir"

# ---------------------------------------------------------------- the container image's base (Podman)
bash "$root/.ci/image-base.sh"

# ---------------------------------------------------------------- report
print_paths | tee "$cache/paths.env"
say "done in $((SECONDS - started)) s"
