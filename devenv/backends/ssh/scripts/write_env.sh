#!/bin/sh
# The environment's variables (stdin: export lines) as ~/.devenv/env.sh of the account
# (0600, written as the account), sourced first by ~/.profile (login shells) and
# ~/.bashrc (bash reads it for commands run over ssh, before its interactive-only part).

account=$1
if ! id -u "$account" >/dev/null 2>&1; then echo "result=absent"; exit 3; fi
home=$(getent passwd "$account" | cut -d: -f6)
uid=$(id -u "$account")
gid=$(id -g "$account")
if [ -z "$home" ] || [ "$home" = / ] || [ ! -d "$home" ]; then echo "result=no-home"; exit 6; fi
# shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
as_user "$uid" "$gid" "$account" sh -c '
    set -eu
    umask 077
    d=$1/.devenv
    if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then rm -f "$d"; fi
    mkdir -p "$d"
    chmod 0700 "$d"
    cat > "$d/.env.sh.tmp"
    mv -f "$d/.env.sh.tmp" "$d/env.sh"
    line="[ -r \"\$HOME/.devenv/env.sh\" ] && . \"\$HOME/.devenv/env.sh\" # devenv-env"
    for f in "$1/.profile" "$1/.bashrc"; do
        if [ -L "$f" ]; then continue; fi
        if [ -f "$f" ] && grep -qF "# devenv-env" "$f"; then continue; fi
        { printf "%s\n" "$line"; if [ -f "$f" ]; then cat "$f"; fi; } > "$f.devenv-tmp"
        mv -f "$f.devenv-tmp" "$f"
    done
' devenv "$home"
echo "result=ok"
