#!/usr/bin/env bash
# Prints the path of a Python 3.12 interpreter (the Lambda runtime's version).
# pyenv shims only answer for python3.12 when the version is selected, so look in
# pyenv's versions directory too before giving up.
set -euo pipefail
for c in "${PYTHON:-}" python3.12 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
  [ -n "$c" ] || continue
  if out=$("$c" -c 'import sys; print(sys.executable) if sys.version_info[:2] == (3, 12) else sys.exit(1)' 2>/dev/null); then
    echo "$out"; exit 0
  fi
done
echo "find-python: no Python 3.12 found; install it or set PYTHON=/path/to/python3.12" >&2
exit 1
