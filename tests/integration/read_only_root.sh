#!/usr/bin/env bash
# Run a command in a mount namespace of its own where every top-level directory is read-only
# but /tmp (and /proc, /dev, /sys, /run): what a pod with readOnlyRootFilesystem and a /tmp
# emptyDir gives a service. Needs CAP_SYS_ADMIN (root) for `unshare -m`.
#   tests/integration/read_only_root.sh COMMAND...
set -euo pipefail
if [ "${ALIGNSTREAM_IN_READ_ONLY_ROOT:-}" != 1 ]; then
  ALIGNSTREAM_IN_READ_ONLY_ROOT=1 exec unshare --mount --propagation private "$0" "$@"
fi
for dir in /*; do
  case "$dir" in /tmp|/proc|/dev|/sys|/run) continue ;; esac
  if [ -d "$dir" ] && [ ! -L "$dir" ]; then
    mount --bind "$dir" "$dir"
    mount -o remount,bind,ro "$dir"
  fi
done
exec "$@"
