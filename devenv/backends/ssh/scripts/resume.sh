#!/bin/sh
# record, rtoken, rstate: set by read_record (prelude.sh, sent ahead of this script).
# shellcheck disable=SC2154

# Resume the account suspend.sh suspended: its shell, keys, crontab and lingering back.
host_dir=$1 account=$2 token=$3
accounts=$host_dir/accounts
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
marker=$accounts/$account.suspended
if [ ! -f "$marker" ]; then echo "home=$home"; echo "result=running"; exit 0; fi
if [ -z "$home" ] || [ "$home" = / ] || [ ! -d "$home" ] || [ -L "$home" ]; then
    echo "result=no-home"; exit 6
fi
shell=$(sed -n 's/^shell=//p' "$marker" | head -n 1)
linger=$(sed -n 's/^linger=//p' "$marker" | head -n 1)
case $shell in
    /*nologin|/bin/false|'')
        shell=/bin/sh
        if [ -x /bin/bash ]; then shell=/bin/bash; fi ;;
esac
# '*': no password, yet not locked (as create.sh leaves it).
usermod -p '*' -e '' -s "$shell" "$account"
for name in authorized_keys authorized_keys2; do
    stash=$accounts/$account.keys${name#authorized_keys}
    [ -f "$stash" ] || continue
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    as_user "$uid" "$gid" "$account" sh -c '
        set -eu
        umask 077
        d=$1/.ssh
        if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then rm -f "$d"; fi
        mkdir -p "$d"
        chmod 0700 "$d"
        cat > "$d/.$2.devenv"
        chmod 0600 "$d/.$2.devenv"
        mv -f "$d/.$2.devenv" "$d/$2"
    ' devenv "$home" "$name" < "$stash"
    rm -f "$stash"
done
if [ -f "$accounts/$account.crontab" ] && command -v crontab >/dev/null 2>&1; then
    crontab -u "$account" "$accounts/$account.crontab" >/dev/null 2>&1 || true
fi
rm -f "$accounts/$account.crontab"
if [ "$linger" = 1 ] && command -v loginctl >/dev/null 2>&1; then
    loginctl enable-linger "$account" >/dev/null 2>&1 || true
fi
# Removed last: a resume cut short is finished by the next one.
rm -f "$marker"
echo "home=$home"
echo "result=resumed"
