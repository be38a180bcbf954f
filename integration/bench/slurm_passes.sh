#!/usr/bin/env bash
# How fast Slurm itself starts N trivial jobs, by how they are submitted:
# the floor any pool's scale-up stands on (issue 16). Prints, per round,
# the seconds from the first sbatch until all N jobs are RUNNING.
#
#   integration/bench/slurm_passes.sh N ROUNDS [MODE...]
#
# MODE: `array` (one array of N), `chunks:K` (arrays of K, each submitted
# once the previous one has all started), `eager:K` (arrays of K back to
# back). Run against the local Slurm (`slurm/local-cluster up ...`); it
# cancels its own jobs between rounds and touches nothing else.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:?N}
ROUNDS=${2:?ROUNDS}
shift 2
MODES=("${@:-array}")
eval "$(slurm/local-cluster env)"
export SLURM_CONF
NAME="drover-passes-$$"

running() { squeue -h -n "$NAME" -t RUNNING -r -o %i | wc -l; }

wait_running() { # until $1 jobs of ours run; at most 120 s
  local want=$1 start=$SECONDS
  while [ "$(running)" -lt "$want" ]; do
    [ $((SECONDS - start)) -lt 120 ] || { echo "timeout: $(running) of $want running" >&2; return 1; }
    sleep 0.1
  done
}

submit() { # an array of $1 tasks
  sbatch --parsable -J "$NAME" -o /dev/null -e /dev/null -c 1 --mem=100M --array=0-$(($1 - 1)) \
    --wrap 'sleep 600' >/dev/null
}

for mode in "${MODES[@]}"; do
  for r in $(seq 1 "$ROUNDS"); do
    t0=$(date +%s.%N)
    case "$mode" in
      array) submit "$N" ;;
      chunks:*)
        k=${mode#chunks:}; done_=0
        while [ "$done_" -lt "$N" ]; do
          n=$(( N - done_ < k ? N - done_ : k ))
          submit "$n"; done_=$((done_ + n)); wait_running "$done_"
        done ;;
      eager:*)
        k=${mode#eager:}; done_=0
        while [ "$done_" -lt "$N" ]; do
          n=$(( N - done_ < k ? N - done_ : k ))
          submit "$n"; done_=$((done_ + n))
        done ;;
      *) echo "unknown mode $mode" >&2; exit 2 ;;
    esac
    wait_running "$N"
    t1=$(date +%s.%N)
    awk -v m="$mode" -v n="$N" -v r="$r" -v a="$t0" -v b="$t1" \
      'BEGIN { printf "%s N=%d round %d: %.2f s\n", m, n, r, b - a }'
    scancel -n "$NAME"
    while [ -n "$(squeue -h -n "$NAME" -o %i)" ]; do sleep 0.2; done
    sleep 2
  done
done
