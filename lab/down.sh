#!/usr/bin/env bash
# Tears down a lab started by lab/up.sh NAME: stops exactly the daemons it recorded (and the
# processes they spawned), deletes the network namespace and removes the state directory.
#
#   lab/down.sh NAME
#
# Safe to run twice, and on a lab that only partly came up.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prog="lab/down.sh"

if [ $# -ne 1 ] || [[ "$1" == -* ]]; then
  sed -n '4,5p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
name=$1
if ! [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$ ]]; then
  echo "$prog: namespace name must be 1-40 letters, digits, '.', '_' or '-', not '$name'" >&2
  exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "$prog: needs root" >&2; exit 3; }

pointer=$here/state/$name
state=""
if [ -f "$pointer" ]; then
  state=$(cat "$pointer")
  # Only ever remove a directory up.sh made for this name.
  case "$(basename "$state")" in
    "portkit-lab-$name."*) ;;
    *) echo "$prog: lab/state/$name names '$state', not a lab state directory; leaving it" >&2; state="" ;;
  esac
fi

# descendants PID: the pids of every process below PID.
descendants() {
  local child
  for child in $(pgrep -P "$1" || true); do
    echo "$child"
    descendants "$child"
  done
}

victims=()
if [ -n "$state" ] && [ -f "$state/pids" ]; then
  while IFS=$'\t' read -r daemon pid; do
    [ -n "$pid" ] || continue
    # A recorded pid counts only while it is still that daemon inside this namespace
    # (pids get reused once a process is gone).
    [ -d "/proc/$pid" ] || continue
    [ "$(ip netns identify "$pid" 2>/dev/null)" = "$name" ] || continue
    victims+=("$pid")
    mapfile -t below < <(descendants "$pid")
    victims+=("${below[@]}")
    : "$daemon"
  done <"$state/pids"
fi

if [ ${#victims[@]} -gt 0 ]; then
  kill -TERM "${victims[@]}" 2>/dev/null || true
  # Give them up to 5 s to exit cleanly, then kill what is left.
  for _ in $(seq 50); do
    alive=()
    for pid in "${victims[@]}"; do
      [ -d "/proc/$pid" ] && [ "$(ip netns identify "$pid" 2>/dev/null)" = "$name" ] && alive+=("$pid")
    done
    [ ${#alive[@]} -gt 0 ] || break
    sleep 0.1
  done
  if [ ${#alive[@]} -gt 0 ]; then
    echo "$prog: killing ${#alive[@]} process(es) that ignored SIGTERM: ${alive[*]}" >&2
    kill -KILL "${alive[@]}" 2>/dev/null || true
  fi
fi

if [ -e "/run/netns/$name" ]; then
  left=$(ip netns pids "$name" 2>/dev/null | tr '\n' ' ')
  if [ -n "$left" ]; then
    echo "$prog: processes not started by the lab are still in '$name' (left alone): $left" >&2
  fi
  ip netns del "$name"
fi
if [ -n "$state" ] && [ -d "$state" ]; then
  rm -rf -- "$state"
fi
rm -f -- "$pointer"
echo "lab $name down"
