#!/usr/bin/env bash
#SBATCH --job-name=dask-driver
#SBATCH --time=00:30:00
#SBATCH --cpus-per-task=1
#SBATCH --mem=2G
# Runs a Python driver inside a Slurm job, from a virtualenv:
#
#   sbatch launcher.sh VENV DRIVER.py [ARGS...]
#
# The venv must sit where the compute nodes see it (the worker jobs run its
# Python and its drover). The driver's output lands in slurm-JOBID.out.
set -euo pipefail
venv=${1:?usage: sbatch launcher.sh VENV DRIVER.py [ARGS...]}
driver=${2:?usage: sbatch launcher.sh VENV DRIVER.py [ARGS...]}
shift 2
if [ ! -f "$venv/bin/activate" ]; then
    echo "launcher: $venv is not a virtualenv (no bin/activate)" >&2
    exit 2
fi
# shellcheck disable=SC1091
source "$venv/bin/activate"
if ! python -c 'import drover, dask, distributed' 2>/dev/null; then
    echo "launcher: $venv lacks drover, dask or distributed (slurm/python-env makes one)" >&2
    exit 2
fi
echo "launcher: job $SLURM_JOB_ID on $(hostname), $(python --version), driver $driver"
exec python -u "$driver" "$@"
