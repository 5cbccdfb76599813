#!/bin/sh
# Sent after prelude.sh and failsafe_prelude.sh, whose functions read host_dir and account
# and set dir, policy, pidfile, unit and pid.
# shellcheck disable=SC2154,SC2034

host_dir=$1 account=$2 python=$3 agent=$4 action=$5 interval=$6
failsafe_dir
lock_failsafe
log=$dir/$account.log
recorded_pid
if is_failsafe "$pid"; then echo "pid=$pid"; echo "result=running"; exit 0; fi
if [ ! -f "$agent" ]; then echo "result=no-agent"; exit 10; fi
actionfile=$dir/$account.action
tmp=$(mktemp "$dir/.action.XXXXXX")
printf '%s' "$action" > "$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$actionfile"
set -- "$python" "$agent" failsafe --user "$account" --policy "$policy" \
    --action-file "$actionfile" --interval "$interval"
pid=
if use_systemd; then
    # A unit left from an earlier failsafe whose pid was lost: replace it.
    systemctl stop "$unit" >/dev/null 2>&1 || true
    systemctl reset-failed "$unit" >/dev/null 2>&1 || true
    systemd-run --unit "$unit" --collect --quiet --property=Restart=on-failure \
        --description "devenv failsafe of $account" "$@" 9>&-
    how=systemd
    tries=0
    while [ "$tries" -lt 100 ]; do
        pid=$(systemctl show -p MainPID "$unit" 2>/dev/null | sed -n 's/^MainPID=//p')
        if is_failsafe "$pid"; then break; fi
        pid=
        tries=$((tries + 1))
        sleep 0.1 2>/dev/null || sleep 1
    done
else
    # No job control in sh -c: the child is no group leader, so setsid execs in place
    # and $! is the failsafe itself.
    (umask 077 && : >>"$log")
    setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
    pid=$!
    how=setsid
    tries=0
    while [ "$tries" -lt 100 ] && ! is_failsafe "$pid"; do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        tries=$((tries + 1))
        sleep 0.1 2>/dev/null || sleep 1
    done
fi
if ! is_failsafe "$pid"; then
    echo "result=failed"
    if [ -f "$log" ]; then echo "log=$(tail -n 3 "$log" | tr '\n' ' ')"; fi
    exit 11
fi
printf '%s\n' "$pid" > "$pidfile.tmp"
mv -f "$pidfile.tmp" "$pidfile"
echo "pid=$pid"
echo "how=$how"
echo "result=started"
