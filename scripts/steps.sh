# Sourced by scripts/setup.sh, main.sh and test.sh: run set-up steps quietly, one line each.
#
#   step "torch 2.13.0 (CPU)" cmd args...
#
# prints `torch 2.13.0 (CPU) ...` and, when the command ends, ` ok (12 s)` on the same line. The
# command's output (stdout and stderr) goes to the log file $T9K_EM_LOG, never to the terminal.
# While it runs, the elapsed time is appended every $T9K_EM_HEARTBEAT seconds (default 15), so a
# step of minutes shows that it is alive. When a step fails, the last 40 lines of the log and
# its path are printed (so a CI console shows the cause) and the script exits with its status.
#
# The log: $T9K_EM_LOG when set (main.sh and test.sh set it, so setup.sh appends to their file),
# else .logs/<script>-<date>-<time>.log at the repo root; start_log prints its path once.

start_log() {
  # Usage: start_log NAME (from the repo root). Exports T9K_EM_LOG, creating the file.
  if [ -z "${T9K_EM_LOG:-}" ]; then
    T9K_EM_LOG="$PWD/.logs/$1-$(date +%Y%m%d-%H%M%S).log"
    export T9K_EM_LOG
    mkdir -p "$(dirname "$T9K_EM_LOG")"
    : >"$T9K_EM_LOG"
    echo "Full log: $T9K_EM_LOG"
  fi
}

log_tail() {
  # Prints the end of the log with its path (after a failure).
  echo "---- last 40 lines of $T9K_EM_LOG ----" >&2
  tail -n 40 "$T9K_EM_LOG" >&2
  echo "---- full log: $T9K_EM_LOG ----" >&2
}

step() {
  # Usage: step TITLE CMD [ARGS...]
  local title=$1 start=$SECONDS pid rc=0 beat=${T9K_EM_HEARTBEAT:-15} next
  shift
  printf '%s ...' "$title"
  printf '\n==== %s: %s (%s)\n' "$title" "$*" "$(date '+%F %T')" >>"$T9K_EM_LOG"
  "$@" >>"$T9K_EM_LOG" 2>&1 </dev/null &
  pid=$!
  next=$((start + beat))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 0.2
    if [ "$SECONDS" -ge "$next" ] && kill -0 "$pid" 2>/dev/null; then
      printf ' %ss' $((SECONDS - start))
      next=$((next + beat))
    fi
  done
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then
    printf ' FAILED (exit %s)\n' "$rc"
    log_tail
    exit "$rc"
  fi
  printf ' ok (%s s)\n' $((SECONDS - start))
}
