#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for trying slurm/train.sh and for the Slurm tests.
#
#   scripts/slurm_cluster.sh start    # munged + slurmctld + slurmd; waits until the node is idle
#   scripts/slurm_cluster.sh status   # exit 0 when the cluster answers and the node is usable
#   scripts/slurm_cluster.sh stop     # stops the daemons this script started
#   scripts/slurm_cluster.sh env      # prints `export SLURM_CONF=...` for sbatch/squeue/scontrol
#
# Every command is idempotent. Everything (slurm.conf, munge key and socket, logs, spool,
# state) lives under $GAN_SLURM_DIR (default /tmp/gan-slurm); nothing under /etc is touched,
# so clients must see SLURM_CONF: run `eval "$(scripts/slurm_cluster.sh env)"` first.
#
# Needs root and the Debian packages `slurm-wlm` and `munge` (Slurm 22.05 is known to work);
# it installs nothing. Settings: GAN_SLURM_DIR, GAN_SLURM_CTLD_PORT (default 6817),
# GAN_SLURM_D_PORT (6818), GAN_SLURM_CPUS (default: nproc).
set -euo pipefail

DIR=${GAN_SLURM_DIR:-/tmp/gan-slurm}
CTLD_PORT=${GAN_SLURM_CTLD_PORT:-6817}
D_PORT=${GAN_SLURM_D_PORT:-6818}
CPUS=${GAN_SLURM_CPUS:-$(nproc)}
NODE=$(hostname -s)
CONF=$DIR/slurm.conf
MUNGE_DIR=$DIR/munge
SOCKET=$MUNGE_DIR/munge.socket.2
export SLURM_CONF=$CONF

say() { echo "slurm_cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

alive() {  # alive PIDFILE: the process named in PIDFILE is running
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

need() {
    local missing=()
    for cmd in munged mungekey slurmctld slurmd sinfo scontrol sbatch; do
        command -v "$cmd" >/dev/null 2>&1 || [[ -x /usr/sbin/$cmd ]] || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) ||
        die "missing ${missing[*]}; install them: apt-get install slurm-wlm munge"
    [[ $(id -u) == 0 ]] || die "run as root (slurmd must start jobs as any user)"
}

write_conf() {
    # 127.0.0.1 as the address of both daemons: no DNS or /etc/hosts entry needed.
    cat >"$CONF" <<EOF
# Written by scripts/slurm_cluster.sh; rewritten on every start.
ClusterName=gan
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$D_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
# GAN_SLURM_CPUS may exceed the hardware (e.g. 2 CPUs for a 2-process test on 1 core).
SlurmdParameters=config_overrides
JobRequeue=1
# Keep finished jobs visible to \`scontrol show job\` for 10 minutes (no accounting database).
MinJobAge=600
KillWait=30
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    # Debian's slurmd reads plugstack.conf from next to slurm.conf; an empty one will do.
    : >"$DIR/plugstack.conf"
    echo "PlugStackConfig=$DIR/plugstack.conf" >>"$CONF"
}

start_munge() {
    if alive "$MUNGE_DIR/munged.pid"; then return; fi
    mkdir -p "$MUNGE_DIR"
    chown munge:munge "$MUNGE_DIR"
    chmod 0755 "$MUNGE_DIR"
    if [[ ! -s $MUNGE_DIR/munge.key ]]; then
        runuser -u munge -- mungekey --create --keyfile="$MUNGE_DIR/munge.key" \
            || die "could not create a munge key"
    fi
    runuser -u munge -- munged --socket="$SOCKET" --key-file="$MUNGE_DIR/munge.key" \
        --pid-file="$MUNGE_DIR/munged.pid" --log-file="$MUNGE_DIR/munged.log" \
        --seed-file="$MUNGE_DIR/munged.seed" \
        || die "munged did not start; see $MUNGE_DIR/munged.log"
    for _ in $(seq 50); do [[ -S $SOCKET ]] && return; sleep 0.1; done
    die "munged started but its socket $SOCKET never appeared"
}

node_state() { sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1 || true; }

start() {
    need
    mkdir -p "$DIR"/{state,spool,log}
    start_munge
    if ! alive "$DIR/slurmctld.pid"; then
        write_conf
        slurmctld -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    fi
    if ! alive "$DIR/slurmd.pid"; then
        slurmd -f "$CONF" -N "$NODE" || die "slurmd did not start; see $DIR/log/slurmd.log"
    fi
    local state=""
    for _ in $(seq 60); do
        state=$(node_state)
        case $state in
            idle | mix | alloc | comp)
                say "up: node $NODE ($CPUS CPUs) is $state; export SLURM_CONF=$CONF"
                return 0
                ;;
            down* | drain*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die "node $NODE never became idle (state '${state:-unknown}'); see $DIR/log/"
}

stop_daemon() {  # stop_daemon NAME PIDFILE
    alive "$2" || return 0
    local pid
    pid=$(cat "$2")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    say "$1 ($pid) ignored SIGTERM for 10 s; killing it"
    kill -9 "$pid" 2>/dev/null || true
}

stop() {
    # Jobs first, so no training process outlives its cluster (slurmd leaves steps running).
    if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid"; then
        scancel --quiet --partition=debug --full --signal=KILL >/dev/null 2>&1 || true
        scancel --quiet --partition=debug >/dev/null 2>&1 || true
        for _ in $(seq 50); do
            [[ -z $(squeue -h -o %i -t RUNNING,COMPLETING,CONFIGURING 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    stop_daemon slurmd "$DIR/slurmd.pid"
    stop_daemon slurmctld "$DIR/slurmctld.pid"
    stop_daemon munged "$MUNGE_DIR/munged.pid"
    say "stopped"
}

status() {
    local ok=0
    for d in munged:$MUNGE_DIR/munged.pid slurmctld:$DIR/slurmctld.pid slurmd:$DIR/slurmd.pid; do
        if alive "${d#*:}"; then
            echo "${d%%:*}: running (pid $(cat "${d#*:}"))"
        else
            echo "${d%%:*}: stopped"
            ok=1
        fi
    done
    local state
    state=$(node_state)
    echo "node $NODE: ${state:-unreachable}"
    case $state in idle | mix | alloc | comp) ;; *) ok=1 ;; esac
    return $ok
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
