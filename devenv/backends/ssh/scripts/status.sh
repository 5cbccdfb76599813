#!/bin/sh
# record, rtoken, rstate: set by read_record (prelude.sh, sent ahead of this script).
# accounts: read by read_record.
# shellcheck disable=SC2154,SC2034

host_dir=$1 account=$2
accounts=$host_dir/accounts
read_record
if id -u "$account" >/dev/null 2>&1; then exists=1; else exists=0; fi
suspended=0
if [ -f "$accounts/$account.suspended" ]; then suspended=1; fi
echo "record=$record"
echo "exists=$exists"
echo "suspended=$suspended"
