# Shared by the scripts: run a step, showing its whole output only when it fails.
# (This machine's pip prints a line for each configured index folder that is missing; a
# successful step's output is noise, a failed one's is the error the user needs.)
run_quietly() {
    local log status
    log=$(mktemp)
    if "$@" >"$log" 2>&1; then
        rm -f "$log"
    else
        status=$?
        grep -v "^WARNING: Location '" "$log" >&2 || :
        rm -f "$log"
        echo "[lenslab] failed (exit $status): $*" >&2
        return "$status"
    fi
}

# need_disk GB WHAT: stop with a clear message when the disk holding this checkout has less
# than GB free. A CUDA build of torch unpacks to ~6 GB; pip failing halfway with ENOSPC leaves
# a broken venv and an error that names neither the cause nor the fix.
need_disk() {
    local free_gb
    free_gb=$(df -Pk . | awk 'NR == 2 { print int($4 / 1048576) }')
    if [ "$free_gb" -lt "$1" ]; then
        echo "[lenslab] $2 needs about $1 GB free on this disk; $free_gb GB is free." >&2
        echo "[lenslab] Free some space (old venvs: .matrix/, .venv-cuda/) and run again." >&2
        return 1
    fi
}
