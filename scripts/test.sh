#!/usr/bin/env bash
# Builds everything and runs the whole test suite. Installs what the tests need (redis-server, kubectl, jinja2, chromium, reference tokenizers)
# when it is missing. Usage: scripts/test.sh [extra dotnet test args, e.g. --filter Category!=Slow]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
dotnet build ProxyOrleans.sln -c Release -nologo -v quiet
dotnet test ProxyOrleans.sln -c Release --no-build -nologo --logger "console;verbosity=normal" "$@"
