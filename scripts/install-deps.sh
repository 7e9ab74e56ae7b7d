#!/usr/bin/env bash
# Install the Debian packages the build and the tests need (run as root).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake pkg-config clang libclang-rt-14-dev \
  libcjson-dev libyaml-dev libpcre2-dev libcmocka-dev tzdata python3 \
  libcurl4-openssl-dev libevent-dev libssl-dev protobuf-c-compiler libprotobuf-c-dev \
  curl jq postgresql libpq-dev openssl mandoc groff-base >/dev/null
