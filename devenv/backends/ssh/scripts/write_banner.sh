#!/bin/sh

host_dir=$1 account=$2
dir=$host_dir/banners
mkdir -p "$dir"
chown 0:0 "$dir"
chmod 0755 "$dir"
tmp=$(mktemp "$dir/.banner.XXXXXX")
head -c 8192 > "$tmp"
chmod 0644 "$tmp"
mv -f "$tmp" "$dir/$account"
echo "result=ok"
