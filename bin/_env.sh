# Sourced by the bin/ scripts: finds the repo and makes sure .venv holds this checkout's
# dependencies (created on first use, refreshed when setup.cfg changes). A script that needs an
# extra sets WIDGETSVC_EXTRAS first (bin/test: test; bin/bench: bench); the others get the
# runtime dependencies only. A venv with the test extras has every other one too.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="$VENV/bin/python"

_hash="$(cat "$REPO/setup.cfg" "$REPO/setup.py" | sha256sum | cut -c1-16)"
_extras="${WIDGETSVC_EXTRAS:-}"
_ready() {  # a stamp of this setup.cfg that covers the extras asked for
  if [[ -z "$_extras" ]]; then
    compgen -G "$VENV/.widgetsvc-$_hash*" >/dev/null
  else
    [[ -f "$VENV/.widgetsvc-$_hash-$_extras" || -f "$VENV/.widgetsvc-$_hash-test" ]]
  fi
}
mkdir -p "$REPO/var"
# One installer at a time (several bin/ commands may start at once); the others wait.
exec 9>"$REPO/var/.venv.lock"
flock 9
if ! _ready; then
  echo "widgetsvc: preparing $VENV (first run or setup.cfg changed; dependencies:" \
       "${_extras:-runtime only}); usually under a minute, progress below ..." >&2
  # A venv without a working pip (python3-venv was missing when it was made) is remade.
  if ! "$PY" -m pip --version >/dev/null 2>&1; then
    echo "widgetsvc:   creating the virtual environment ..." >&2
    if ! python3 -m venv --clear "$VENV" >/dev/null 2>&1; then
      if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        echo "widgetsvc: installing python3-venv with apt-get ..." >&2
        apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
          apt-get install -y -q python3-venv >/dev/null
      fi
      python3 -m venv --clear "$VENV" || {
        echo "widgetsvc: 'python3 -m venv' failed: the system package python3-venv is missing" \
             "(install it: apt-get install python3-venv)" >&2
        exit 1
      }
    fi
  fi
  _log="$REPO/var/pip-install.log"
  : >"$_log"
  _progress() {  # pip's output to the log; one short line per package to the terminal
    while IFS= read -r line; do
      printf '%s\n' "$line" >>"$_log"
      case "$line" in
        "Collecting "*) echo "widgetsvc:   ${line%% (*}" >&2 ;;
        "Installing collected packages"*) echo "widgetsvc:   installing them ..." >&2 ;;
      esac
    done
  }
  _target="$REPO${_extras:+[$_extras]}"
  if ! { "$PY" -m pip install --disable-pip-version-check --upgrade pip 2>&1 &&
         "$PY" -m pip install --disable-pip-version-check -e "$_target" 2>&1; } | _progress; then
    tail -n 40 "$_log" >&2
    echo "widgetsvc: installing dependencies failed (full log: $_log)" >&2
    exit 1
  fi
  find "$VENV" -maxdepth 1 -name '.widgetsvc-*' ! -name ".widgetsvc-$_hash*" -delete
  touch "$VENV/.widgetsvc-$_hash${_extras:+-$_extras}"
  echo "widgetsvc: $VENV is ready" >&2
fi
flock -u 9
exec 9>&-
export PATH="$VENV/bin:$PATH"
cd "$REPO"
