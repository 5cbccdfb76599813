#!/bin/sh
# Sent after prelude.sh and failsafe_prelude.sh, whose functions read host_dir and account
# and set dir, policy, pidfile, unit and pid.
# shellcheck disable=SC2154,SC2034

host_dir=$1 account=$2
failsafe_dir
tmp=$(mktemp "$dir/.policy.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$policy"
trap - EXIT
echo "path=$policy"
echo "result=ok"
