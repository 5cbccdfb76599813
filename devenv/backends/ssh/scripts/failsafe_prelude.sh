#!/bin/sh
# Sent after prelude.sh, ahead of the failsafe_*.sh scripts: they set host_dir and account;
# failsafe_dir and recorded_pid set dir, policy, pidfile, unit and pid for them.
# shellcheck disable=SC2154,SC2034

# The failsafe's folder: root only, never through a symlink.
failsafe_dir() {
    dir=$host_dir/failsafe
    if [ -L "$host_dir" ] || [ -L "$dir" ]; then echo "result=symlink"; exit 9; fi
    mkdir -p "$dir"
    chown 0:0 "$dir"
    chmod 0700 "$dir"
    policy=$dir/$account.json
    pidfile=$dir/$account.pid
    unit=devenv-failsafe-$account
}

lock_failsafe() {
    (umask 077 && : >>"$dir/$account.lock")
    exec 9>>"$dir/$account.lock"
    if ! flock -w 30 9; then echo "result=busy"; exit 75; fi
}

# Whether pid $1 is this account's failsafe (its argv: failsafe --user ACCOUNT --policy FILE).
is_failsafe() {
    case $1 in ''|*[!0-9]*) return 1 ;; esac
    [ -r "/proc/$1/cmdline" ] || return 1
    tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | awk -v a="$account" -v p="$policy" '
        prev == "--user" && $0 == a { u = 1 }
        prev == "--policy" && $0 == p { f = 1 }
        $0 == "failsafe" { c = 1 }
        { prev = $0 }
        END { exit !(u && f && c) }'
}

recorded_pid() {
    pid=
    if [ -f "$pidfile" ]; then pid=$(head -n 1 "$pidfile" 2>/dev/null || true); fi
}

use_systemd() {
    command -v systemd-run >/dev/null 2>&1 && command -v systemctl >/dev/null 2>&1 || return 1
    case $(systemctl is-system-running 2>/dev/null || true) in
        running|degraded|starting|initializing) return 0 ;;
    esac
    return 1
}
