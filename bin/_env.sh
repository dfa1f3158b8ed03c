# Sourced by the bin/ scripts: finds the repo and makes sure .venv holds this checkout's
# dependencies (created on first use, refreshed when setup.cfg changes).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="$VENV/bin/python"

_stamp="$VENV/.widgetsvc-$(cat "$REPO/setup.cfg" "$REPO/setup.py" | sha256sum | cut -c1-16)"
mkdir -p "$REPO/var"
# One installer at a time (several bin/ commands may start at once); the others wait.
exec 9>"$REPO/var/.venv.lock"
flock 9
if [[ ! -f "$_stamp" ]]; then
  echo "widgetsvc: preparing $VENV (first run or setup.cfg changed) ..." >&2
  # A venv without a working pip (python3-venv was missing when it was made) is remade.
  if ! "$PY" -m pip --version >/dev/null 2>&1; then
    if ! python3 -m venv --clear "$VENV" >/dev/null 2>&1; then
      if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "widgetsvc: installing python3-venv with apt-get ..." >&2
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -q python3-venv >/dev/null
      fi
      python3 -m venv --clear "$VENV" || {
        echo "widgetsvc: 'python3 -m venv' failed; install python3-venv (apt-get install python3-venv)" >&2
        exit 1
      }
    fi
  fi
  _log="$REPO/var/pip-install.log"
  if ! { "$PY" -m pip install --disable-pip-version-check --upgrade pip &&
         "$PY" -m pip install --disable-pip-version-check -e "$REPO[test]"; } >"$_log" 2>&1; then
    tail -n 40 "$_log" >&2
    echo "widgetsvc: installing dependencies failed (full log: $_log)" >&2
    exit 1
  fi
  rm -f "$VENV"/.widgetsvc-*
  touch "$_stamp"
fi
flock -u 9
exec 9>&-
export PATH="$VENV/bin:$PATH"
cd "$REPO"
