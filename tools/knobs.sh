# Sourced by train.sh, train_loop.sh and evaluate.sh: check_knobs LAUNCHER validates every knob of the launcher, as
# the launcher resolved it, with utils/knobs.py (the one validation, shared with the Python CLIs). A bad value stops
# the launcher with exit 2 and one line per knob, before anything is printed as a plan or written.
check_knobs() {
  local names name values=()
  names="$(cd "$HERE" && "$PYTHON" -m utils.knobs names "$1")" || exit 2
  for name in $names; do
    [ -n "${!name+set}" ] && values+=("$name=${!name}")
  done
  (cd "$HERE" && env "${values[@]}" "$PYTHON" -m utils.knobs "$1") || exit 2
}
