#!/bin/sh
# record, rtoken, rstate: set by read_record (prelude.sh, sent ahead of this script).
# shellcheck disable=SC2154

host_dir=$1 account=$2 token=$3 purge=$4
accounts=$host_dir/accounts
if [ ! -d "$accounts" ]; then echo "result=absent"; exit 0; fi
lock_account
read_record
if [ -z "$record" ] || [ "$rtoken" != "$token" ]; then echo "result=not-ours"; exit 0; fi
# Marked first: from now on no provision of this token brings the account back.
write_record ended
if ! id -u "$account" >/dev/null 2>&1; then echo "result=absent"; exit 0; fi
uid=$(id -u "$account")
gid=$(id -g "$account")
home=$(getent passwd "$account" | cut -d: -f6)
if ! ps -p 1 -o ruid= >/dev/null 2>&1; then echo "result=no-ps"; exit 8; fi
nologin=/usr/sbin/nologin
if [ ! -x "$nologin" ]; then nologin=/sbin/nologin; fi
if [ ! -x "$nologin" ]; then nologin=/bin/false; fi
# No new login: locked password, expired account, a shell that refuses.
usermod -L -e 1970-01-02 -s "$nologin" "$account"
if command -v crontab >/dev/null 2>&1; then crontab -r -u "$account" >/dev/null 2>&1 || true; fi
if [ -e "/var/lib/systemd/linger/$account" ] && command -v loginctl >/dev/null 2>&1; then
    loginctl disable-linger "$account" >/dev/null 2>&1 || true
fi
# Every process of the uid, however started (setsid, nohup, env -i, double forks):
# kill(-1) as the account reaches them all in one call; repeat until none is left.
survivors() {
    ps -e -o pid=,ruid=,euid=,stat= \
        | awk -v u="$uid" '($2 == u || $3 == u) && $4 !~ /^Z/ { print $1 }'
}
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
# Nothing of the account runs now, so nothing can swap ~/.ssh under us.
if [ -n "$home" ] && [ -d "$home/.ssh" ] && [ ! -L "$home/.ssh" ]; then
    rm -rf -- "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2"
fi
# The env values it was given (secrets among them) end with it; the home stays.
if [ -n "$home" ] && [ -d "$home/.devenv" ] && [ ! -L "$home/.devenv" ]; then
    rm -f -- "$home/.devenv/env.sh"
fi
if [ "$purge" = 1 ]; then
    userdel -r "$account" >/dev/null 2>&1 || userdel "$account"
    if [ -n "$home" ] && [ "$home" != / ] && [ -d "$home" ] && [ ! -L "$home" ] \
            && [ "$(stat -c %u "$home")" = "$uid" ]; then
        rm -rf -- "$home"
    fi
    echo "result=purged"
else
    echo "result=terminated"
fi
