#!/usr/bin/env bash
# Runs the test suite with the GitHub fixtures it needs.
#
# Some tests check the bot against GitHub's own published material: the example webhook
# payloads (@octokit/webhooks-examples) and the REST OpenAPI description (@octokit/openapi).
# Both are npm packages, pinned in tests/npm/package.json and package-lock.json; `npm ci`
# installs exactly the locked versions into tests/npm/node_modules (git-ignored).
#
# Usage: scripts/test.sh [cargo test arguments...]
#   e.g. scripts/test.sh --test github_events --test github_openapi
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -d tests/npm/node_modules/@octokit/openapi/generated \
   || ! -d tests/npm/node_modules/@octokit/webhooks-examples/api.github.com \
   || tests/npm/package-lock.json -nt tests/npm/node_modules/.package-lock.json ]]; then
  npm ci --prefix tests/npm --no-audit --no-fund
fi

exec cargo test --locked "$@"
