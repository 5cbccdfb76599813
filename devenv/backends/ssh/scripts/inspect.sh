#!/bin/sh
# record, rtoken, rstate: set by read_record (prelude.sh, sent ahead of this script).
# shellcheck disable=SC2154

host_dir=$1 account=$2
accounts=$host_dir/accounts
read_record
if id -u "$account" >/dev/null 2>&1; then exists=1; else exists=0; fi
active=0
if [ -d "$accounts" ]; then
    active=$(cat "$accounts"/*.token 2>/dev/null | grep -c ' active$' || true)
fi
python=$(command -v python3 || true)
python_ok=0
if [ -n "$python" ] && "$python" -c 'import sys; sys.exit(sys.version_info < (3, 8))' \
        >/dev/null 2>&1; then
    python_ok=1
fi
missing=
for tool in useradd usermod userdel getent id flock ps awk head mktemp; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if ! command -v setpriv >/dev/null 2>&1 && ! command -v runuser >/dev/null 2>&1; then
    missing="$missing setpriv"
fi
load=0
if [ -r /proc/loadavg ]; then read -r load _ < /proc/loadavg; fi
cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
if command -v nvidia-smi >/dev/null 2>&1; then gpus=1; else gpus=0; fi
echo "record=$record"
echo "exists=$exists"
echo "active=$active"
echo "python=$python"
echo "python_ok=$python_ok"
echo "missing=$missing"
echo "load=$load"
echo "cpus=$cpus"
echo "nvidia_smi=$gpus"
