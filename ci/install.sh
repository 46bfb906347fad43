#!/usr/bin/env bash
# Installs a pinned kubeward release for this runner and verifies it before unpacking.
#
#   ci/install.sh [VERSION] [DIR]
#
# Downloads kubeward-<version>-<target>.tar.gz and kubeward-<version>-SHA256SUMS from
# $KUBEWARD_RELEASE_URL (default: the GitHub release of v<version>), checks the archive's
# SHA-256 against its line in the sums file, and only then unpacks `kubeward` into DIR
# (default: $RUNNER_TEMP/kubeward-bin or ./kubeward-bin), adding DIR to $GITHUB_PATH when set.
#
# Targets: x86_64-unknown-linux-gnu is built and tested; aarch64-unknown-linux-gnu,
# x86_64-apple-darwin and aarch64-apple-darwin are named but untested.
set -euo pipefail

version="${1:-${KUBEWARD_VERSION:-0.1.0}}"
version="${version#v}"
dir="${2:-${RUNNER_TEMP:-.}/kubeward-bin}"
base="${KUBEWARD_RELEASE_URL:-https://github.com/kubeward/kubeward/releases/download/v${version}}"

os="${RUNNER_OS:-$(uname -s)}"
arch="${RUNNER_ARCH:-$(uname -m)}"
case "${os}/${arch}" in
  Linux/X64 | Linux/x86_64) target=x86_64-unknown-linux-gnu ;;
  Linux/ARM64 | Linux/aarch64) target=aarch64-unknown-linux-gnu ;;
  macOS/X64 | Darwin/x86_64) target=x86_64-apple-darwin ;;
  macOS/ARM64 | Darwin/arm64) target=aarch64-apple-darwin ;;
  *)
    echo "kubeward install: no release for ${os}/${arch} (linux x86_64 is supported; linux arm64 and macOS are untested)" >&2
    exit 2
    ;;
esac
if [[ "$target" != x86_64-unknown-linux-gnu ]]; then
  echo "kubeward install: ${target} is not tested; linux x86_64 is the supported target" >&2
fi

archive="kubeward-${version}-${target}.tar.gz"
sums="kubeward-${version}-SHA256SUMS"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

fetch() {
  curl --fail --silent --show-error --location --proto '=https,http' --retry 3 \
    --output "$work/$1" "$base/$1"
}
fetch "$archive"
fetch "$sums"

expected="$(awk -v name="$archive" '$2 == name || $2 == "*" name { print $1; exit }' "$work/$sums")"
if [[ -z "$expected" ]]; then
  echo "kubeward install: ${sums} has no line for ${archive}; refusing to install" >&2
  exit 1
fi
if command -v sha256sum >/dev/null 2>&1; then
  actual="$(sha256sum "$work/$archive" | awk '{ print $1 }')"
else
  actual="$(shasum -a 256 "$work/$archive" | awk '{ print $1 }')"
fi
if [[ "$actual" != "$expected" ]]; then
  echo "kubeward install: checksum mismatch for ${archive}: expected ${expected}, got ${actual}; refusing to install" >&2
  exit 1
fi

mkdir -p "$work/unpacked" "$dir"
tar -xzf "$work/$archive" -C "$work/unpacked" kubeward
install -m 0755 "$work/unpacked/kubeward" "$dir/kubeward"
if [[ -n "${GITHUB_PATH:-}" ]]; then
  echo "$dir" >>"$GITHUB_PATH"
fi
echo "kubeward ${version} (${target}) installed in ${dir}"
