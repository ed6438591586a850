#!/usr/bin/env bash
# Train the GAN on a Slurm cluster: one node or many, GPUs or CPU, preemptible.
#
#   sbatch [sbatch options] slurm/train.sh [gan train options]
#
#   sbatch slurm/train.sh --dataset mnist --epochs 100                   # one node
#   sbatch --nodes 2 --gpus-per-node 4 slurm/train.sh --epochs 100       # 2 nodes x 4 GPUs
#   sbatch --nodes 2 -c 1 slurm/train.sh --cpu --dataset mnist-sample    # 2 nodes x 1 CPU process
#   sbatch -c 2 slurm/train.sh --cpu --processes 2 --dataset mnist-sample
#
# Everything after the script name goes to `gan train` and wins over what this script
# derives. The #SBATCH lines below are defaults; override them on the sbatch command line.
# The job runs in your environment (sbatch's default --export=ALL): activate the virtualenv
# that has gan_dist before calling sbatch, or set GAN_PYTHON.
#
# Per node, `srun` starts ONE launcher (`gan train`), which spawns that node's worker
# processes. `python -m gan_dist.slurm_env` turns Slurm's variables into the placement flags:
# --nodes, --node-rank, --master-addr (the head node's NodeAddr, which this script reads with
# sinfo and passes in GAN_NODE_ADDRS: node names need not resolve as host names),
# --master-port (from the job id), and --gpus N from the node's GPU allocation, or --cpu
# --processes 1 when it has none. All nodes write into one run directory on a shared file system.
#
# One node's training process dying ends the job: that node prints the cause once, the others
# stop at once (their sockets close); a process that goes silent is given up after
# GAN_COLLECTIVE_TIMEOUT (600 s), and srun kills launchers still running GAN_SRUN_WAIT (60 s)
# after the first one ended. Resume with a new job: GAN_NAME=slurm-<that job id> sbatch ...
#
# Run directory: $GAN_OUT/$GAN_NAME, default runs/slurm-<job id>, always with --resume auto,
# so a requeued job (same job id) continues its own run.
#
# Preemption and time limits: Slurm sends SIGUSR1 to this script 60 s before the time limit
# (--signal=B:USR1@60; preemption tools and `scancel --batch --signal=USR1 JOBID` do the
# same). The script writes "requeue" to $GAN_STOP_FILE; within one training step (ten on a
# GPU) every process of every node (they agree by an all-reduce) saves a complete checkpoint,
# mid-epoch if need be, and
# `gan train` exits with 75 on each node; the script then calls `scontrol requeue`, and the
# restarted job resumes from that checkpoint. SIGTERM
# (`scancel JOBID`) writes "cancel": checkpoint and stop, no requeue. At most
# $GAN_MAX_RESTARTS requeues (default 3) per job; after that the job ends with exit 75 and
# the run can still be resumed by hand with `gan train --resume auto --out ... --name ...`.
#
# Environment: GAN_OUT (default runs, relative to the submit directory), GAN_NAME (default
# slurm-$SLURM_JOB_ID), GAN_MAX_RESTARTS (3), GAN_SRUN_WAIT (60), GAN_COLLECTIVE_TIMEOUT (600),
# GAN_PYTHON (python3), GAN_SWEEP (set by `gan sweep --slurm`, below).
#
# Job arrays (`gan sweep NAME --slurm` submits one): with GAN_SWEEP set to the sweep folder,
# array task N trains point N of GAN_SWEEP/sweep.json: `python -m gan_dist.sweep.task` prints
# the point's run folder, run name and `gan train` options, which go before yours; the rest
# is as above. A task is requeued on its own (scontrol requeue ARRAYJOB_TASK), keeps its task
# id and resumes its own point; the other tasks of the array are not touched.
#
#SBATCH --job-name=gan-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=2
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@60
#SBATCH --requeue
set -uo pipefail

log() { echo "[train.sh $(date +%H:%M:%S)] $*"; }

: "${SLURM_JOB_ID:?run this script with sbatch (or inside an allocation)}"
py=${GAN_PYTHON:-python3}
max_restarts=${GAN_MAX_RESTARTS:-3}
restarts=${SLURM_RESTART_COUNT:-0}
# What scontrol calls this job: an array task is ARRAYJOB_TASK (its own id would do as well,
# but this is the one squeue and the sweep's status show).
job=${SLURM_ARRAY_JOB_ID:+${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID:-}}
job=${job:-$SLURM_JOB_ID}

# A sweep's array task: its point's run folder, name and options come first.
if [[ -n ${GAN_SWEEP:-} ]]; then
    point=$("$py" -m gan_dist.sweep.task "$GAN_SWEEP" "${SLURM_ARRAY_TASK_ID:-}") || exit 2
    mapfile -t point <<<"$point"
    GAN_OUT=${point[0]} GAN_NAME=${point[1]}
    set -- "${point[@]:2}" "$@"
fi
out=$(realpath -m "${GAN_OUT:-runs}")
name=${GAN_NAME:-slurm-$SLURM_JOB_ID}
mkdir -p "$out" || exit 1

# The stop file lives on the shared file system, where rank 0 of every node can see it; a
# leftover from before a requeue must not stop the new run at once.
export GAN_STOP_FILE=$out/.gan-stop-$SLURM_JOB_ID
rm -f "$GAN_STOP_FILE"

stop_reason=""
signals=0
on_signal() {  # on_signal REASON NAME
    stop_reason=$1
    signals=$((signals + 1))
    echo "$1" >"$GAN_STOP_FILE"
    log "$2: asked training to checkpoint and stop ($1)"
}
trap 'on_signal requeue SIGUSR1' USR1
trap 'on_signal cancel SIGTERM' TERM

log "job $job restart $restarts (max $max_restarts) on ${SLURM_JOB_NODELIST:-?}"
log "run directory $out/$name"

# Rendezvous address: the head node's NodeAddr, the address Slurm itself reaches it at (node
# names need not resolve as host names); gan_dist.slurm_env picks the head node's entry.
if addrs=$(sinfo -h -N -n "$SLURM_JOB_NODELIST" -o '%N=%o' 2>/dev/null) && [[ -n $addrs ]]; then
    GAN_NODE_ADDRS=$(sort -u <<<"$addrs" | paste -sd, -)
    export GAN_NODE_ADDRS
    log "node addresses $GAN_NODE_ADDRS"
else
    log "sinfo did not give the nodes' addresses; rendezvous at the head node's name"
fi

# srun since Slurm 22.05 does not inherit --cpus-per-task from sbatch.
# One node's launcher failing: the others notice at once when its processes are gone (their
# sockets close), else after GAN_COLLECTIVE_TIMEOUT (600 s) when one went silent; launchers
# still running GAN_SRUN_WAIT (60) s after the first one ended are killed. Not
# --kill-on-bad-exit: exit 75 (checkpoint saved) is a good exit, and the other nodes must
# finish theirs (a cluster-wide KillOnBadExit=1 is overridden for that reason).
srun --nodes="${SLURM_JOB_NUM_NODES:-1}" --ntasks="${SLURM_JOB_NUM_NODES:-1}" --ntasks-per-node=1 \
    ${SLURM_CPUS_PER_TASK:+--cpus-per-task="$SLURM_CPUS_PER_TASK"} \
    --kill-on-bad-exit=0 --wait="${GAN_SRUN_WAIT:-60}" \
    bash -c 'flags=$("$0" -m gan_dist.slurm_env -- "$@") || exit 2
             mapfile -t flags <<<"$flags"
             exec "$0" -m gan_dist train "${flags[@]}" "$@"' \
    "$py" --out "$out" --name "$name" --resume auto "$@" &
srun_pid=$!

# Bash runs traps only between commands, so srun runs in the background and we wait for it;
# a trapped signal ends `wait` early (status > 128), and we wait again.
while :; do
    seen=$signals
    wait "$srun_pid"
    rc=$?
    ((signals == seen)) && break
done
rm -f "$GAN_STOP_FILE"

if ((rc == 0)); then
    log "training finished"
    exit 0
fi
if ((rc != 75)); then
    log "training failed with exit status $rc"
    exit "$rc"
fi
if [[ $stop_reason != requeue ]]; then
    log "training stopped early with a checkpoint (${stop_reason:-signal}); not requeueing"
    exit 75
fi
if ((restarts >= max_restarts)); then
    log "checkpoint saved, but the job has used its $max_restarts restarts" \
        "(GAN_MAX_RESTARTS); not requeueing"
    exit 75
fi
# Requeueing ends this script; the TERM that comes with it must not write a stop file.
trap '' TERM USR1
log "checkpoint saved; requeueing job $job" \
    "(restart $((restarts + 1)) of at most $max_restarts)"
if ! scontrol requeue "$job"; then
    log "scontrol requeue failed; resume by hand with --resume auto"
    exit 75
fi
exit 0
