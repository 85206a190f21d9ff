#!/usr/bin/env bash
# Checks the GitHub workflows with actionlint, built once from the Go module proxy into
# .tools/bin (pinned; Go is already needed by the chaos checker).
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.7.12
bin=.tools/bin/actionlint
if [ ! -x "$bin" ] || ! "$bin" -version | grep -qx "$version"; then
  GOBIN="$PWD/.tools/bin" go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
fi
"$bin" .github/workflows/*.yml
echo "actionlint $version: .github/workflows/*.yml pass"
