#!/bin/sh

account=$1
uid=$(id -u "$account")
gid=$(id -g "$account")
home=$(getent passwd "$account" | cut -d: -f6)
if [ -z "$home" ] || [ ! -d "$home/.ssh" ] || [ -L "$home/.ssh" ]; then
    echo "result=no-home"; exit 6
fi
keys=$(mktemp)
trap 'rm -f "$keys"' EXIT
head -c 65536 > "$keys"
chmod 0644 "$keys"
# As the account (never root in its home): its own lines kept, members' lines replaced.
# shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
as_user "$uid" "$gid" "$account" sh -c '
    set -eu
    umask 077
    d=$1/.ssh
    tmp=$d/.authorized_keys.devenv
    { grep -v " devenv-shared:" "$d/authorized_keys" || true; cat "$2"; } > "$tmp"
    mv -f "$tmp" "$d/authorized_keys"
' devenv "$home" "$keys"
echo "result=ok"
