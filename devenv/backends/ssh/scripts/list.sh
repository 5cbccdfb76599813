#!/bin/sh

host_dir=$1
accounts=$host_dir/accounts
if [ ! -d "$accounts" ]; then echo "result=none"; exit 0; fi
for file in "$accounts"/*.token; do
    [ -f "$file" ] || continue
    account=${file##*/}
    account=${account%.token}
    record=$(head -n 1 "$file" | tr '\t' ' ')
    workflow=
    if [ -f "$accounts/$account.workflow" ]; then
        workflow=$(head -n 1 "$accounts/$account.workflow" | tr '\t' ' ')
    fi
    exists=0 gecos=
    if id -u "$account" >/dev/null 2>&1; then
        exists=1
        gecos=$(getent passwd "$account" | cut -d: -f5 | tr '\t' ' ')
    fi
    printf 'account\t%s\t%s\t%s\t%s\t%s\n' "$account" "$record" "$exists" "$workflow" "$gecos"
done
echo "result=ok"
