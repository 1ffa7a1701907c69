# Clean-up helpers for scripts that start a server and remove what it leaves behind. Sourced, not run.
#
# The rule they keep: a script's exit status is its own work's (the tests', the check's), never its clean-up's. A
# server told to stop is still running for a while, and may still write into its directory (redis-server writes its
# log while it shuts down), so removing the directory at once races with it; and under `set -e` a failing command in an
# EXIT trap becomes the script's status, which turned a green test run red.

# stop_process PID [GRACE_SECS]: SIGTERM PID (a negative PID is a process group) and wait until it has exited, at most
# GRACE_SECS (default 10), then SIGKILL it and wait again, briefly. Works for processes that are not this shell's
# children (a daemonised server), so it polls rather than `wait`s. Always returns 0.
stop_process() {
  local pid=$1 grace=${2:-10} i
  [ -n "$pid" ] || return 0
  kill -TERM -- "$pid" 2>/dev/null || return 0
  for ((i = 0; i < grace * 20; i++)); do
    kill -0 -- "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  echo "cleanup: $pid did not exit within ${grace}s of SIGTERM; sending SIGKILL" >&2
  kill -KILL -- "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 40; i++)); do
    kill -0 -- "$pid" 2>/dev/null || return 0
    sleep 0.05
  done
  echo "cleanup: $pid still exists after SIGKILL" >&2
  return 0
}

# stop_server_and_remove PIDFILE DIR [GRACE_SECS]: stop the process PIDFILE names (if any) as stop_process does, then
# remove DIR. A directory that cannot be removed is reported on stderr, not failed on. Always returns 0.
stop_server_and_remove() {
  local pidfile=$1 dir=$2 grace=${3:-10} pid=""
  if [ -f "$pidfile" ]; then pid="$(cat "$pidfile" 2>/dev/null || true)"; fi
  stop_process "$pid" "$grace"
  if [ -n "$dir" ] && ! rm -rf -- "$dir" 2>/dev/null; then
    echo "cleanup: could not remove $dir (left behind)" >&2
  fi
  return 0
}

# keep_status_on_exit COMMAND...: run COMMAND... when the script exits, with `set -e` off, and exit with the status
# the script was exiting with, whatever COMMAND returns.
keep_status_on_exit() {
  local cmd
  cmd="$(printf '%q ' "$@")"
  # shellcheck disable=SC2064 # the command is meant to be fixed now, quoted as given
  trap "__cleanup_status=\$?; set +e; $cmd; exit \"\$__cleanup_status\"" EXIT
}
