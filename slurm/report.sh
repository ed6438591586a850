#!/usr/bin/env bash
# Render a run's coursework report (report.pdf) as a Slurm job, typically after training:
#
#   jid=$(sbatch --parsable slurm/train.sh --epochs 100)
#   sbatch --dependency=afterok:$jid slurm/report.sh                # runs/slurm-$jid
#   sbatch --dependency=afterok:$jid slurm/report.sh RUN_DIR [gan report options]
#
# Without RUN_DIR the run is $GAN_OUT/$GAN_NAME when GAN_NAME is set, else
# $GAN_OUT/slurm-<job id of the afterok dependency> (train.sh's default name); GAN_OUT
# defaults to runs. A requeued training job only satisfies afterok once it has completed.
# The report needs no GPU and no torch. Environment: GAN_OUT, GAN_NAME, GAN_PYTHON (python3).
#
#SBATCH --job-name=gan-report
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --time=00:30:00
#SBATCH --output=%x-%j.out
set -euo pipefail

py=${GAN_PYTHON:-python3}
if (($# > 0)) && [[ $1 != -* ]]; then
    run_dir=$1
    shift
elif [[ -n ${GAN_NAME:-} ]]; then
    run_dir=${GAN_OUT:-runs}/$GAN_NAME
elif [[ ${SLURM_JOB_DEPENDENCY:-} =~ ^afterok:([0-9]+) ]]; then
    run_dir=${GAN_OUT:-runs}/slurm-${BASH_REMATCH[1]}
else
    echo "error: no run directory: pass it (slurm/report.sh RUN_DIR), set GAN_NAME, or submit" \
        "with --dependency=afterok:<train job id>" >&2
    exit 2
fi

echo "[report.sh $(date +%H:%M:%S)] job ${SLURM_JOB_ID:-?}: report of $run_dir"
exec "$py" -m gan_dist report "$run_dir" "$@"
