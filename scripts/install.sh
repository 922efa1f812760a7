#!/usr/bin/env bash
# Installs everything sbx needs on a Debian/Ubuntu machine with Node >= 20:
# bubblewrap, mmdebstrap and a C toolchain (apt), pnpm (npm registry; corepack is not used) and the workspace's packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=10.12.1
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "sbx needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# bubblewrap runs the sandboxes; util-linux (setpriv, prlimit) sets them up; e2fsprogs makes their
# storage; the tests also run the host's git, curl, wget, python3 with pip and requests, and ps
# inside sandboxes, and openssl makes their test CA.
missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v setpriv >/dev/null 2>&1 && command -v prlimit >/dev/null 2>&1 || missing+=(util-linux)
command -v git >/dev/null 2>&1 || missing+=(git)
for tool in curl wget openssl; do command -v $tool >/dev/null 2>&1 || missing+=($tool); done
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.ext4 ] || missing+=(e2fsprogs)
command -v ps >/dev/null 2>&1 || missing+=(procps)
# the native supervisor is built from C (static, against glibc's libc.a) by `pnpm build`
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v make >/dev/null 2>&1 || missing+=(make)
[ -e "$(gcc -print-file-name=libc.a 2>/dev/null)" ] || missing+=(libc6-dev)
# the embedded-daemon test gives itself a network namespace (ip, nsenter)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || missing+=(iproute2)
command -v nsenter >/dev/null 2>&1 || missing+=(util-linux)
[ -x /usr/bin/python3 ] || missing+=(python3)
/usr/bin/python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
/usr/bin/python3 -c "import requests" >/dev/null 2>&1 || missing+=(python3-requests)
# `sbx image build` (root images from Debian's packages) runs mmdebstrap on the daemon's host;
# apt checks what it fetches against Debian's archive keyring
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
# the Python SDK tests make a fresh virtual environment with the python3 on PATH
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ "$(pnpm --version 2>/dev/null || true)" != "$PNPM_VERSION" ]; then
  echo "installing pnpm $PNPM_VERSION from the npm registry"
  if [ -w "$(npm prefix -g)/lib" ] || [ -z "$SUDO" ]; then npm install -g --silent "pnpm@$PNPM_VERSION"; else $SUDO npm install -g --silent "pnpm@$PNPM_VERSION"; fi
fi

pnpm install --frozen-lockfile --reporter=silent

# The Kubernetes manifests' schema validator (PyPI, schemas bundled), for their test.
scripts/k8s-validate-venv.sh >/dev/null
