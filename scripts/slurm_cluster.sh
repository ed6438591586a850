#!/usr/bin/env bash
# A Slurm cluster of one or more compute nodes on this one machine, for trying slurm/train.sh
# and for the Slurm tests.
#
#   scripts/slurm_cluster.sh start [--nodes N] [--cpus-per-node C]
#                                     # munged + slurmctld + one slurmd per node (n1..nN);
#                                     # waits until every node is idle
#   scripts/slurm_cluster.sh status   # exit 0 when the cluster answers and every node is usable
#   scripts/slurm_cluster.sh stop     # cancels its jobs, stops the daemons this script started
#   scripts/slurm_cluster.sh env      # prints `export SLURM_CONF=...` for sbatch/squeue/scontrol
#
# Every command is idempotent; `start` on a running cluster checks that it has the nodes asked
# for (stop it first to change them). Everything (slurm.conf, munge key and socket, logs, spool,
# state) lives under $GAN_SLURM_DIR (default /tmp/gan-slurm); nothing under /etc is touched,
# so clients must see SLURM_CONF: run `eval "$(scripts/slurm_cluster.sh env)"` first.
#
# The nodes are named n1..nN and all have the address 127.0.0.1, each slurmd on its own port
# (GAN_SLURM_D_PORT, +1, ...). The names do not resolve as host names, exactly as on clusters
# whose node names differ from their network names: jobs must take a node's address from Slurm
# (slurm/train.sh does). Each node offers C CPUs (default: all of this machine's), so the nodes
# share the real cores.
#
# Needs root and the Debian packages `slurm-wlm` and `munge` (Slurm 22.05 is known to work);
# it installs nothing. Settings: GAN_SLURM_DIR, GAN_SLURM_CTLD_PORT (default 6817),
# GAN_SLURM_D_PORT (6818: the first node's slurmd), GAN_SLURM_NODES (1), GAN_SLURM_CPUS
# (CPUs per node, default: nproc); the options win over the variables.
set -euo pipefail

DIR=${GAN_SLURM_DIR:-/tmp/gan-slurm}
CTLD_PORT=${GAN_SLURM_CTLD_PORT:-6817}
D_PORT=${GAN_SLURM_D_PORT:-6818}
NODES=${GAN_SLURM_NODES:-1}
CPUS=${GAN_SLURM_CPUS:-$(nproc)}
CONF=$DIR/slurm.conf
MUNGE_DIR=$DIR/munge
SOCKET=$MUNGE_DIR/munge.socket.2
export SLURM_CONF=$CONF

say() { echo "slurm_cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

alive() {  # alive PIDFILE: the process named in PIDFILE is running
    [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_names() {  # node_names N: n1 n2 ... nN
    local i
    for ((i = 1; i <= $1; i++)); do echo "n$i"; done
}

conf_nodes() {  # the node names of the written slurm.conf (the running cluster's)
    [[ -s $CONF ]] && sed -n 's/^NodeName=\([^ ]*\) .*/\1/p' "$CONF"
}

conf_cpus() { [[ -s $CONF ]] && sed -n 's/^NodeName=.* CPUs=\([0-9]*\).*/\1/p' "$CONF" | head -n1; }

slurmd_pidfile() { echo "$DIR/slurmd-$1.pid"; }  # SlurmdPidFile with %n expanded

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
    # 127.0.0.1 as the address of every daemon: no DNS or /etc/hosts entry needed. %n in the
    # slurmd paths is the node name, so the slurmds of one machine keep apart.
    cat >"$CONF" <<EOF
# Written by scripts/slurm_cluster.sh; rewritten on every start.
ClusterName=gan
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
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
# GAN_SLURM_CPUS may exceed the hardware (e.g. 2 CPUs for a 2-process test on 1 core), and
# several nodes share the machine's cores.
SlurmdParameters=config_overrides
JobRequeue=1
# Keep finished jobs visible to \`scontrol show job\` for 10 minutes (no accounting database).
MinJobAge=600
KillWait=30
EOF
    local i=0 node
    for node in $(node_names "$NODES"); do
        echo "NodeName=$node NodeAddr=127.0.0.1 Port=$((D_PORT + i)) CPUs=$CPUS State=UNKNOWN"
        i=$((i + 1))
    done >>"$CONF"
    echo "PartitionName=debug Nodes=$(node_names "$NODES" | paste -sd,) Default=YES" \
        "MaxTime=INFINITE State=UP" >>"$CONF"
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

node_state() {  # node_state NODE: sinfo's short state (idle, alloc, down*, ...)
    sinfo -h -N -n "$1" -o %t 2>/dev/null | head -n1 || true
}

usable() { case $1 in idle | mix | alloc | comp) return 0 ;; *) return 1 ;; esac; }

check_running_shape() {  # a running cluster must be the one asked for
    local running cpus
    running=$(conf_nodes | wc -l)
    cpus=$(conf_cpus)
    if [[ -n $nodes_given && $running != "$NODES" ]] || [[ -n $cpus_given && $cpus != "$CPUS" ]]; then
        die "a cluster of $running node(s) with $cpus CPUs each already runs under $DIR;" \
            "stop it first (scripts/slurm_cluster.sh stop) to start $NODES node(s) with $CPUS CPUs"
    fi
    NODES=$running
    CPUS=$cpus
}

start() {
    need
    [[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes must be a positive number, not '$NODES'"
    [[ $CPUS =~ ^[1-9][0-9]*$ ]] || die "--cpus-per-node must be a positive number, not '$CPUS'"
    mkdir -p "$DIR"/{state,spool,log}
    start_munge
    if alive "$DIR/slurmctld.pid"; then
        check_running_shape
    else
        write_conf
        slurmctld -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    fi
    local node
    for node in $(conf_nodes); do
        alive "$(slurmd_pidfile "$node")" && continue
        slurmd -f "$CONF" -N "$node" || die "slurmd -N $node did not start; see $DIR/log/slurmd-$node.log"
    done
    local waiting state
    for _ in $(seq 60); do
        waiting=()
        for node in $(conf_nodes); do
            state=$(node_state "$node")
            usable "$state" && continue
            waiting+=("$node:${state:-unknown}")
            case $state in
                down* | drain*) scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
            esac
        done
        if ((${#waiting[@]} == 0)); then
            say "up: $NODES node(s) $(conf_nodes | paste -sd,) with $CPUS CPUs each;" \
                "export SLURM_CONF=$CONF"
            return 0
        fi
        sleep 0.5
    done
    die "node(s) never became idle (${waiting[*]}); see $DIR/log/"
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

any_slurmd_alive() {
    local pidfile
    for pidfile in "$DIR"/slurmd*.pid; do alive "$pidfile" && return 0; done
    return 1
}

stop() {
    # Jobs first, so no training process outlives its cluster (slurmd leaves steps running).
    if alive "$DIR/slurmctld.pid" && any_slurmd_alive; then
        scancel --quiet --partition=debug --full --signal=KILL >/dev/null 2>&1 || true
        scancel --quiet --partition=debug >/dev/null 2>&1 || true
        for _ in $(seq 50); do
            [[ -z $(squeue -h -o %i -t RUNNING,COMPLETING,CONFIGURING 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    local pidfile
    for pidfile in "$DIR"/slurmd*.pid; do  # slurmd.pid: a cluster of an older version of this script
        [[ -e $pidfile ]] && stop_daemon "slurmd $(basename "$pidfile" .pid)" "$pidfile"
    done
    stop_daemon slurmctld "$DIR/slurmctld.pid"
    stop_daemon munged "$MUNGE_DIR/munged.pid"
    say "stopped"
}

status() {
    local ok=0 d node state
    for d in munged:$MUNGE_DIR/munged.pid slurmctld:$DIR/slurmctld.pid; do
        if alive "${d#*:}"; then
            echo "${d%%:*}: running (pid $(cat "${d#*:}"))"
        else
            echo "${d%%:*}: stopped"
            ok=1
        fi
    done
    local nodes
    nodes=$(conf_nodes || true)
    if [[ -z $nodes ]]; then
        echo "no cluster configured under $DIR"
        return 1
    fi
    for node in $nodes; do
        if alive "$(slurmd_pidfile "$node")"; then
            echo "slurmd $node: running (pid $(cat "$(slurmd_pidfile "$node")"))"
        else
            echo "slurmd $node: stopped"
            ok=1
        fi
        state=$(node_state "$node")
        echo "node $node: ${state:-unreachable}"
        usable "$state" || ok=1
    done
    return $ok
}

usage() {
    echo "usage: $0 start [--nodes N] [--cpus-per-node C] | stop | status | env" >&2
    exit 2
}

command=${1:-}
(($#)) && shift
# Set when the nodes or CPUs were asked for (option or variable): a running cluster must match.
nodes_given=${GAN_SLURM_NODES:-}
cpus_given=${GAN_SLURM_CPUS:-}
while (($#)); do
    [[ $command == start ]] || usage
    case $1 in
        --nodes) (($# >= 2)) || usage; NODES=$2; nodes_given=1; shift 2 ;;
        --nodes=*) NODES=${1#*=}; nodes_given=1; shift ;;
        --cpus-per-node) (($# >= 2)) || usage; CPUS=$2; cpus_given=1; shift 2 ;;
        --cpus-per-node=*) CPUS=${1#*=}; cpus_given=1; shift ;;
        *) usage ;;
    esac
done

case $command in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) echo "export SLURM_CONF=$CONF" ;;
    *) usage ;;
esac
