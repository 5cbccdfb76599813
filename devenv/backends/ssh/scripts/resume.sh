#!/bin/sh
# uid, gid, home: set by active_account (prelude.sh, sent ahead of this script); token
# is read there too.
# shellcheck disable=SC2154,SC2034

# Resume the account suspend.sh suspended: its shell, keys, crontab and lingering back.
host_dir=$1 account=$2 token=$3
accounts=$host_dir/accounts
active_account
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
    write_ssh_file "$uid" "$gid" "$account" "$home" "$name" < "$stash"
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
