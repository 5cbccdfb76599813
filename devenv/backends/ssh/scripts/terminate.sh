#!/bin/sh
# record, rtoken, rstate: set by read_record (prelude.sh, sent ahead of this script).
# shellcheck disable=SC2154,SC2034
# lock_login, end_processes: end_processes.sh, sent ahead of this script too.

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
lock_login
if command -v crontab >/dev/null 2>&1; then crontab -r -u "$account" >/dev/null 2>&1 || true; fi
if [ -e "/var/lib/systemd/linger/$account" ] && command -v loginctl >/dev/null 2>&1; then
    loginctl disable-linger "$account" >/dev/null 2>&1 || true
fi
end_processes
# Nothing of the account runs now, so nothing can swap ~/.ssh under us.
if [ -n "$home" ] && [ -d "$home/.ssh" ] && [ ! -L "$home/.ssh" ]; then
    rm -rf -- "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2"
fi
# The env values it was given (secrets among them) end with it; the home stays.
if [ -n "$home" ] && [ -d "$home/.devenv" ] && [ ! -L "$home/.devenv" ]; then
    rm -f -- "$home/.devenv/env.sh"
fi
# A suspension's leftovers: the keys and crontab kept for a resume that never comes.
rm -f "$accounts/$account.suspended" "$accounts/$account.keys" "$accounts/$account.keys2" \
    "$accounts/$account.crontab"
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
