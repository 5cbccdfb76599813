#!/bin/sh
# uid, gid, home: set by active_account (prelude.sh, sent ahead of this script); token
# is read there too.
# shellcheck disable=SC2154,SC2034
# lock_login, end_processes: end_processes.sh, sent ahead of this script too.

# Suspend the account of a token: no login, no process, the home kept; what resume.sh
# gives back (the keys, the crontab, the shell, lingering) kept root-only in accounts/.
host_dir=$1 account=$2 token=$3
accounts=$host_dir/accounts
active_account
if ! ps -p 1 -o ruid= >/dev/null 2>&1; then echo "result=no-ps"; exit 8; fi
marker=$accounts/$account.suspended
# Written once, before the shell changes: a retried suspend keeps what the first saw.
if [ ! -f "$marker" ]; then
    shell=$(getent passwd "$account" | cut -d: -f7)
    linger=0
    if [ -e "/var/lib/systemd/linger/$account" ]; then linger=1; fi
    (umask 077 && printf 'shell=%s\nlinger=%s\n' "$shell" "$linger" > "$accounts/.$account.suspended")
    mv -f "$accounts/.$account.suspended" "$marker"
fi
lock_login
if command -v crontab >/dev/null 2>&1; then
    tmp=$(mktemp "$accounts/.crontab.XXXXXX")
    if crontab -l -u "$account" > "$tmp" 2>/dev/null; then
        mv -f "$tmp" "$accounts/$account.crontab"
        crontab -r -u "$account" >/dev/null 2>&1 || true
    else
        rm -f "$tmp"
    fi
fi
if [ -e "/var/lib/systemd/linger/$account" ] && command -v loginctl >/dev/null 2>&1; then
    loginctl disable-linger "$account" >/dev/null 2>&1 || true
fi
end_processes
# Nothing of the account runs now, so nothing can swap ~/.ssh under us; the keys are
# read as the account (a symlink there must not make root read another file).
if [ -n "$home" ] && [ -d "$home/.ssh" ] && [ ! -L "$home/.ssh" ]; then
    for name in authorized_keys authorized_keys2; do
        file=$home/.ssh/$name
        if [ ! -e "$file" ] && [ ! -L "$file" ]; then continue; fi
        stash=$accounts/$account.keys${name#authorized_keys}
        tmp=$(mktemp "$accounts/.keys.XXXXXX")
        as_user "$uid" "$gid" "$account" head -c 262144 "$file" > "$tmp" 2>/dev/null || true
        chmod 0600 "$tmp"
        mv -f "$tmp" "$stash"
        rm -f -- "$file"
    done
fi
echo "home=$home"
echo "result=suspended"
