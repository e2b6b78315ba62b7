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
