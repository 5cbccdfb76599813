#!/bin/sh

host_dir=$1 name=$2
mkdir -p "$host_dir/agent" "$host_dir/accounts"
chown 0:0 "$host_dir" "$host_dir/agent" "$host_dir/accounts"
chmod 0755 "$host_dir" "$host_dir/agent"
chmod 0700 "$host_dir/accounts"
target=$host_dir/agent/$name
tmp=$(mktemp "$host_dir/agent/.install.XXXXXX")
cat > "$tmp"
chmod 0644 "$tmp"
if [ -f "$target" ] && command -v cmp >/dev/null 2>&1 && cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
    echo "result=present"
else
    mv -f "$tmp" "$target"
    echo "result=installed"
fi
echo "path=$target"
