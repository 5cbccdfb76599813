#!/bin/sh
# The init commands of an account, as the account, in its home (the workspace), with
# its env.sh sourced. mode: done (has token's init run? result=done|todo), run (stdin:
# one command; its output on stdout, its status the script's), log (stdin appended to
# ~/.devenv/init.log; truncated first when $3 is "new"), mark (token's init ran).

account=$1 mode=$2 token=${3:-}
if ! id -u "$account" >/dev/null 2>&1; then echo "result=absent"; exit 90; fi
home=$(getent passwd "$account" | cut -d: -f6)
shell=$(getent passwd "$account" | cut -d: -f7)
uid=$(id -u "$account")
gid=$(id -g "$account")
if [ -z "$home" ] || [ "$home" = / ] || [ ! -d "$home" ]; then echo "result=no-home"; exit 91; fi
if [ ! -x "$shell" ]; then shell=/bin/sh; fi
user_sh() {
    as_user "$uid" "$gid" "$account" env -i HOME="$home" USER="$account" LOGNAME="$account" \
        SHELL="$shell" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 "$@"
}
case $mode in
done)
    # shellcheck disable=SC2016 # expanded by the inner sh
    if user_sh sh -c '[ "$(cat "$HOME/.devenv/init-done" 2>/dev/null)" = "$1" ]' devenv "$token"
    then echo "result=done"; else echo "result=todo"; fi
    ;;
run)
    command=$(cat)
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    user_sh sh -c '
        cd "$HOME" || exit 1
        if [ -r .devenv/env.sh ]; then . ./.devenv/env.sh; fi
        exec "$SHELL" -c "$1" </dev/null
    ' devenv "$command" 2>&1
    ;;
log)
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    user_sh sh -c '
        set -eu
        umask 077
        mkdir -p "$HOME/.devenv"
        if [ -L "$HOME/.devenv/init.log" ]; then rm -f "$HOME/.devenv/init.log"; fi
        if [ "$1" = new ]; then cat > "$HOME/.devenv/init.log"; else cat >> "$HOME/.devenv/init.log"; fi
    ' devenv "$token"
    echo "result=ok"
    ;;
mark)
    # shellcheck disable=SC2016 # expanded by the inner sh, from its arguments
    user_sh sh -c 'umask 077 && mkdir -p "$HOME/.devenv" && printf "%s\n" "$1" > "$HOME/.devenv/init-done"' \
        devenv "$token"
    echo "result=ok"
    ;;
*)
    echo "result=bad-mode"; exit 92
    ;;
esac
