# Sourced by the CI scripts that run a Python tool. `pinned_venv PACKAGE VERSION` makes
# (once) a venv with exactly that version under ~/.cache/missive-ci (MISSIVE_CI_CACHE),
# outside the clone so later runs reuse it, and sets `venv` to its path.
pinned_venv() {
  venv="${MISSIVE_CI_CACHE:-$HOME/.cache/missive-ci}/$1-$2"
  if [ ! -x "$venv/bin/$1" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$1==$2"
  fi
}
