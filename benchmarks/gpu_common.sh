# Shared by the GPU scripts (gpu_check.sh, gpu_experiments.sh): sourced, not run.

# gpu_args NAME HELP_LINES ARGS...: parse [--quick] [DATA_DIR] into QUICK (0 or 1) and DATA;
# --help prints lines HELP_LINES (a sed range) of the calling script.
gpu_args() {
    local name=$1 help=$2
    shift 2
    QUICK=0
    DATA=""
    for arg in "$@"; do
        case "$arg" in
            --quick) QUICK=1 ;;
            -h|--help) sed -n "$help" "$0"; exit 0 ;;
            -*) echo "$name: unknown option $arg (use --quick or a data folder)" >&2; exit 2 ;;
            *) DATA="$arg" ;;
        esac
    done
}

# require_cuda NAME: exit 2 unless $PY's torch sees a CUDA device.
require_cuda() {
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "$1: no CUDA device here; run 'benchmarks/$1 --quick' on a CPU" >&2
        exit 2
    fi
}
