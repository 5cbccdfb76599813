#!/bin/sh
# Sent after prelude.sh and failsafe_prelude.sh, whose functions read host_dir and account
# and set dir, policy, pidfile, unit and pid.
# shellcheck disable=SC2154,SC2034

host_dir=$1 account=$2
if [ ! -d "$host_dir/failsafe" ]; then echo "result=absent"; exit 0; fi
failsafe_dir
lock_failsafe
stopped=0
if use_systemd && systemctl is-active --quiet "$unit" 2>/dev/null; then
    systemctl stop "$unit" >/dev/null 2>&1 || true
    stopped=1
fi
# The recorded pid and any other failsafe of this account and policy (a lost pidfile).
recorded_pid
pids=
if is_failsafe "$pid"; then pids=$pid; fi
for other in $(ps -e -o pid=,args= | awk -v a=" --user $account " \
        'index($0, " failsafe ") && index($0 " ", a) { print $1 }'); do
    if [ "$other" != "$pid" ] && is_failsafe "$other"; then pids="$pids $other"; fi
done
if [ -n "$pids" ]; then
    stopped=1
    # shellcheck disable=SC2086 # one argument per pid
    kill -TERM $pids 2>/dev/null || true
    tries=0
    while [ "$tries" -lt 50 ]; do
        left=
        for one in $pids; do if is_failsafe "$one"; then left="$left $one"; fi; done
        if [ -z "$left" ]; then break; fi
        tries=$((tries + 1))
        sleep 0.1 2>/dev/null || sleep 1
    done
    for one in $pids; do if is_failsafe "$one"; then kill -KILL "$one" 2>/dev/null || true; fi; done
fi
rm -f "$pidfile"
if [ "$stopped" = 1 ]; then echo "result=stopped"; else echo "result=absent"; fi
