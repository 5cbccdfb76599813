#!/bin/sh
# record, rtoken, rstate: set by read_record (prelude.sh, sent ahead of this script).
# shellcheck disable=SC2154

host_dir=$1 account=$2 token=$3 name=$4 workflow=${5:-} deployment=${6:-} user_rc=${7:-}
accounts=$host_dir/accounts
mkdir -p "$accounts"
chmod 0700 "$accounts"
keys=$(mktemp "$accounts/.keys.XXXXXX")
trap 'rm -f "$keys"' EXIT
cat > "$keys"
lock_account
read_record
if id -u "$account" >/dev/null 2>&1; then exists=1; else exists=0; fi
if [ -n "$record" ] && [ "$rtoken" = "$token" ]; then
    if [ "$rstate" != active ]; then echo "result=terminated"; exit 3; fi
elif [ -n "$record" ] && [ "$rstate" = active ]; then
    echo "result=in-use"; exit 4
elif [ -z "$record" ] && [ "$exists" = 1 ]; then
    echo "result=foreign"; exit 5
fi
# Recorded first: a retry finds it; an account without a record is never devenv's.
write_record active
if [ -n "$workflow" ]; then
    (umask 077 && printf '%s %s %s\n' "$workflow" "$name" "$deployment" \
        > "$accounts/.$account.workflow.tmp")
    mv -f "$accounts/.$account.workflow.tmp" "$accounts/$account.workflow"
fi
shell=/bin/sh
if [ -x /bin/bash ]; then shell=/bin/bash; fi
if [ "$exists" = 0 ]; then
    if getent group "$account" >/dev/null 2>&1; then
        useradd -m -s "$shell" -c "devenv $name" -g "$account" "$account"
    else
        useradd -m -s "$shell" -c "devenv $name" "$account"
    fi
fi
# '*': no password, yet not locked (sshd without PAM refuses locked accounts' keys too).
usermod -p '*' -e '' -s "$shell" "$account"
home=$(getent passwd "$account" | cut -d: -f6)
uid=$(id -u "$account")
gid=$(id -g "$account")
if [ -z "$home" ] || [ "$home" = / ]; then echo "result=no-home"; exit 6; fi
if [ ! -d "$home" ]; then
    mkdir -p "$home"
    chown "$uid:$gid" "$home"
fi
chmod 0700 "$home"
if [ -d "$home/.ssh" ] && [ ! -L "$home/.ssh" ]; then chown -h "$uid:$gid" "$home/.ssh"; fi
write_ssh_file "$uid" "$gid" "$account" "$home" authorized_keys < "$keys"
# The login banner (written by devenv whenever the rules change), shown by login shells.
banner=$host_dir/banners/$account
show="[ -r $banner ] && [ -z \"\${DEVENV_BANNER_SHOWN:-}\" ] && cat $banner"
line="$show; DEVENV_BANNER_SHOWN=1 # devenv"
# shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
as_user "$uid" "$gid" "$account" sh -c '
    set -eu
    line=$2
    for f in "$1/.profile" "$1/.bash_profile" "$1/.bash_login"; do
        if [ "$f" != "$1/.profile" ] && [ ! -f "$f" ]; then continue; fi
        if [ -L "$f" ]; then continue; fi
        if [ -f "$f" ] && grep -qF "# devenv" "$f"; then continue; fi
        printf "%s\n" "$line" >> "$f"
    done
' devenv "$home" "$line"
# ~/.ssh/rc records each session for the agent; a user's own rc is left alone.
if [ -n "$user_rc" ]; then
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    as_user "$uid" "$gid" "$account" sh -c '
        set -eu
        f=$1/.ssh/rc
        if [ -L "$f" ] || { [ -e "$f" ] && ! grep -qF "# devenv: record" "$f"; }; then exit 0; fi
        printf "%s" "$2" > "$f.devenv"
        mv -f "$f.devenv" "$f"
    ' devenv "$home" "$user_rc"
fi
echo "home=$home"
echo "uid=$uid"
echo "result=ok"
