#!/usr/bin/env bash
# Builds the images docker-compose.yml and the container tests need on a machine that cannot reach
# any container registry: a Node 20 base made with debootstrap from Debian's own packages plus this
# machine's Node and npm, look-alikes of the upstream postgres, redis, haproxy and prometheus images
# built FROM that base with apt-get, and the project image built FROM the base. Production keeps the
# upstream images; these only stand in for them here (docs/deployment.md).
#
# Each look-alike is rebuilt only when its recipe changed (a hash kept in an image label); the
# project image is rebuilt every time, which Docker's layer cache makes cheap when nothing changed.
# Prints the image variables docker-compose.yml reads, as KEY=value lines, on stdout.
#
# Needs root (debootstrap, chroot), a running Docker engine, debootstrap, and Node 20 on PATH.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$PWD
ROOT=$(cd ../.. && pwd)

PREFIX=${LOCAL_IMAGE_PREFIX:-signaling-local}
BASE_IMAGE=$PREFIX/node:20-bookworm
PROJECT_IMAGE=${PROJECT_IMAGE:-signaling-server:local}
SUITE=bookworm
LABEL=org.signaling-cluster.recipe
export DOCKER_BUILDKIT=0 # the legacy builder needs no frontend image from a registry

log() { printf '== %s\n' "$*" >&2; }

# The Debian mirror this machine's apt uses (deb822 or one-line sources), so the images install
# from the same place.
debian_mirror() {
  local uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2>/dev/null |
    grep -v security | grep -oE 'https?://[^ ]*/debian/?' | head -n 1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

recipe_of() { cat "$@" | sha256sum | cut -c1-16; }

is_current() { # image recipe-hash
  [ "$(docker image inspect -f "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true)" = "$2" ]
}

build_base() {
  local node npm_root cafile mirror recipe
  node=$(command -v node)
  npm_root=$(npm root -g)/npm
  cafile=$(npm config get cafile)
  [ "$cafile" = "null" ] || [ "$cafile" = "undefined" ] && cafile=/etc/ssl/certs/ca-certificates.crt
  mirror=$(debian_mirror)
  # The recipe: this function's own text, the Node, npm and CA bundle copied in, and the mirror.
  recipe=$( (declare -f build_base; "$node" --version; cat "$npm_root/package.json" | sha256sum; sha256sum <"$cafile"; echo "$mirror") | sha256sum | cut -c1-16)
  if is_current "$BASE_IMAGE" "$recipe"; then return; fi
  command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  log "building $BASE_IMAGE from $mirror with node $("$node" --version)"
  rootfs=$(mktemp -d /tmp/signaling-rootfs.XXXXXX)
  trap 'rm -rf --one-file-system "$rootfs"' EXIT
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >&2
  cat >"$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror $SUITE main
deb $mirror $SUITE-updates main
deb ${mirror%/debian*}/debian-security $SUITE-security main
SOURCES
  # Node and npm where the official node image keeps them, and the CA bundle npm is told to trust.
  install -m 0755 "$node" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules" "$rootfs/usr/local/etc" "$rootfs/etc/ssl/certs"
  cp -a "$npm_root" "$rootfs/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  install -m 0644 "$cafile" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  printf 'cafile=/etc/ssl/certs/ca-certificates.crt\nfund=false\naudit=false\nupdate-notifier=false\n' >"$rootfs/usr/local/etc/npmrc"
  # The official image's `node` user (1000:1000), which the manifests and the Dockerfile run as.
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change "LABEL $LABEL=$recipe" \
    --change 'CMD ["node"]' - "$BASE_IMAGE" >/dev/null
}

build_look_alike() { # name tag
  local name=$1 tag=$PREFIX/$1:$2 recipe
  recipe=$( (recipe_of "$HERE/$name"/*; docker image inspect -f '{{.Id}}' "$BASE_IMAGE") | sha256sum | cut -c1-16)
  if ! is_current "$tag" "$recipe"; then
    log "building $tag"
    docker build --quiet --network host --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "$LABEL=$recipe" -t "$tag" "$HERE/$name" >/dev/null
  fi
  echo "$tag"
}

build_base
POSTGRES_IMAGE=$(build_look_alike postgres 15)
REDIS_IMAGE=$(build_look_alike redis 7)
HAPROXY_IMAGE=$(build_look_alike haproxy 2.6)
PROMETHEUS_IMAGE=$(build_look_alike prometheus 2)
log "building $PROJECT_IMAGE"
docker build --quiet --network host --build-arg "NODE_IMAGE=$BASE_IMAGE" -t "$PROJECT_IMAGE" "$ROOT" >/dev/null

cat <<VARS
NODE_IMAGE=$BASE_IMAGE
POSTGRES_IMAGE=$POSTGRES_IMAGE
REDIS_IMAGE=$REDIS_IMAGE
HAPROXY_IMAGE=$HAPROXY_IMAGE
PROMETHEUS_IMAGE=$PROMETHEUS_IMAGE
SIGNALING_IMAGE=$PROJECT_IMAGE
VARS
