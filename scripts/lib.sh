# scripts/lib.sh — helpers sourced by scripts/ and bench drivers (bash):
#   source "$(dirname "$0")/lib.sh"
# The Python tests have the same two in tests/integration/harness.py.

# Ports below Linux's ephemeral range (32768-60999 by default), as the
# harness takes them: a client's outgoing connection never takes one as
# its source port, so a service restarted on its old port finds it free.
lib_port_min=20000 lib_port_max=32000
# Ports handed out by this script, so two calls before either binds never
# give the same one: free_port runs in $(...) subshells, so a file named
# by the script's pid ($$ is the same in its subshells), made on first use.
# lib_cleanup removes it: call it from the script's EXIT trap.
lib_ports_given="${TMPDIR:-/tmp}/lib-ports-$$"
lib_cleanup() { rm -f "$lib_ports_given"; }

# free_port: a TCP port with nothing bound to it on this host right now,
# not given out before by this script.
free_port() {
  local port
  for port in $(shuf -i "$lib_port_min-$lib_port_max" -n 200); do
    grep -qx "$port" "$lib_ports_given" 2>/dev/null && continue
    [ -z "$(ss -Htan "sport = :$port" 2>/dev/null)" ] || continue
    echo "$port" >>"$lib_ports_given"
    echo "$port"
    return 0
  done
  echo "free_port: no free port in $lib_port_min-$lib_port_max" >&2
  return 1
}

# wait_health URL TIMEOUT_S [REGEX [CURL_ARG...]]: until GET URL answers
# 2xx (and its body matches REGEX); 1 with a message after TIMEOUT_S.
wait_health() {
  local url=$1 timeout_s=$2 regex=${3:-} body
  shift $(($# < 3 ? $# : 3))
  local deadline=$(($(date +%s%3N) + timeout_s * 1000))
  while [ "$(date +%s%3N)" -lt "$deadline" ]; do
    if body="$(curl -fs "$@" "$url" 2>/dev/null)" && grep -q -- "$regex" <<<"$body"; then
      return 0
    fi
    sleep 0.02
  done
  echo "wait_health: $url not healthy${regex:+ ($regex)} after ${timeout_s}s" >&2
  return 1
}
