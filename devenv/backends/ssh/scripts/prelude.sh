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

# Replace a file of the account's ~/.ssh with stdin (uid gid name home file), as the
# account (never root in its home): a link in place of ~/.ssh is removed, the write atomic.
write_ssh_file() {
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    as_user "$1" "$2" "$3" sh -c '
        set -eu
        umask 077
        d=$1/.ssh
        if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then rm -f "$d"; fi
        mkdir -p "$d"
        chmod 0700 "$d"
        cat > "$d/.$2.devenv"
        chmod 0600 "$d/.$2.devenv"
        mv -f "$d/.$2.devenv" "$d/$2"
    ' devenv "$4" "$5"
}

# The live account of a token, locked (accounts account token set): sets uid gid home;
# result=gone (exit 3) when the account or its record is not this token's live one.
active_account() {
    if [ ! -d "$accounts" ]; then echo "result=gone"; exit 3; fi
    lock_account
    read_record
    if [ -z "$record" ] || [ "$rtoken" != "$token" ] || [ "$rstate" != active ]; then
        echo "result=gone"; exit 3
    fi
    if ! id -u "$account" >/dev/null 2>&1; then echo "result=gone"; exit 3; fi
    uid=$(id -u "$account")
    gid=$(id -g "$account")
    home=$(getent passwd "$account" | cut -d: -f6)
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
