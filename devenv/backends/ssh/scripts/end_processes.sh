#!/bin/sh
# Sent after prelude.sh, ahead of terminate.sh and suspend.sh: end_processes ends every
# process of the account whose uid, gid and name they set.
# shellcheck disable=SC2154

# Every process of the uid, however started (setsid, nohup, env -i, double forks):
# kill(-1) as the account reaches them all in one call; repeat until none is left.
survivors() {
    ps -e -o pid=,ruid=,euid=,stat= \
        | awk -v u="$uid" '($2 == u || $3 == u) && $4 !~ /^Z/ { print $1 }'
}

end_processes() {
    rounds=0
    while :; do
        pids=$(survivors)
        if [ -z "$pids" ]; then break; fi
        rounds=$((rounds + 1))
        if [ "$rounds" -gt 200 ]; then
            echo "result=survivors"
            # shellcheck disable=SC2086,SC2116 # split on purpose: the pids on one line
            echo "pids=$(echo $pids)"
            exit 7
        fi
        as_user "$uid" "$gid" "$account" kill -9 -1 >/dev/null 2>&1 || true
        # shellcheck disable=SC2086 # one argument per pid
        kill -9 $pids >/dev/null 2>&1 || true
        sleep 0.1 2>/dev/null || sleep 1
    done
}

# No new login: locked password, expired account, a shell that refuses.
lock_login() {
    nologin=/usr/sbin/nologin
    if [ ! -x "$nologin" ]; then nologin=/sbin/nologin; fi
    if [ ! -x "$nologin" ]; then nologin=/bin/false; fi
    usermod -L -e 1970-01-02 -s "$nologin" "$account"
}
