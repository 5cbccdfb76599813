#!/bin/sh
# Sent ahead of every host script (host_scripts.py), as one sh -c: the scripts set accounts,
# account and token; read_record sets record, rtoken and rstate for them.
# shellcheck disable=SC2154,SC2034

set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
umask 022
cd /

# Run a command as the account (uid gid name command...): no PAM, no shell of its own.
as_user() {
    u=$1 g=$2 a=$3
    shift 3
    if command -v setpriv >/dev/null 2>&1; then
        setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"
    else
        runuser -u "$a" -- "$@"
    fi
}

# The record of an account: "<token> <state>", or empty.
read_record() {
    record=
    if [ -f "$accounts/$account.token" ]; then
        record=$(head -n 1 "$accounts/$account.token")
    fi
    rtoken=${record%% *}
    rstate=${record#* }
}

write_record() {
    (umask 077 && printf '%s %s\n' "$token" "$1" > "$accounts/.$account.token.tmp")
    mv -f "$accounts/.$account.token.tmp" "$accounts/$account.token"
}

lock_account() {
    (umask 077 && : >>"$accounts/$account.lock")
    exec 9>>"$accounts/$account.lock"
    if ! flock -w 60 9; then
        echo "result=busy"
        exit 75
    fi
}
