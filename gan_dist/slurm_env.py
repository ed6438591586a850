"""Where this process sits in a Slurm allocation, read from Slurm's environment variables.

Owns: expanding Slurm host lists (`gpu[001-003,007],login1`), the placement of one node in a
job (number of nodes, this node's rank, the head node and the address used for rendezvous, a
master port derived from the job id, GPUs on this node) and the `gan train` flags that follow.

`slurm/train.sh` runs `python -m gan_dist.slurm_env -- USER_ARGS...` inside `srun` on every
node; it prints the placement flags for that node, one word per line (so no shell quoting is
involved), leaving out any the user gave. On node 1 of a 2-node job with 4 GPUs per node:

    --nodes 2 --node-rank 1 --master-addr 10.1.0.17 --master-port 14242 --gpus 4

The rendezvous address is the head node's NodeAddr, the address Slurm itself reaches that
node at, which train.sh reads once with `sinfo -N -o %N=%o` and passes in GAN_NODE_ADDRS
("gpu017=10.1.0.17,gpu018=10.1.0.18"). A node's name need not resolve as a host name (it
does not on the local test cluster, and on real clusters names and interfaces often differ);
without GAN_NODE_ADDRS, or when it lacks the head node, the head node's name is used.
SLURM_LAUNCH_NODE_IPADDR is not used: it is where `srun` ran, which is a login node when
srun is called from an salloc shell there.

Pure Python on purpose (no torch, no scontrol): it runs before the heavy imports, and the
unit tests feed it plain dicts.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product

# Ports 10000..29999: above the well-known range, below Linux's ephemeral range (32768+).
MASTER_PORT_BASE = 10000
MASTER_PORT_SPAN = 20000


class SlurmEnvError(ValueError):
    """Slurm's environment is missing or inconsistent."""


@dataclass(frozen=True)
class Placement:
    """One node's place in a Slurm job."""

    job_id: int
    hostnames: tuple[str, ...]  # every node of the step, in Slurm's order
    node_rank: int  # this node's index in `hostnames`
    gpus_per_node: int  # 0 -> train on the CPU
    master_addr: str  # where node 0 (hostnames[0]) is reached: its NodeAddr, else its name

    @property
    def nodes(self) -> int:
        return len(self.hostnames)

    @property
    def master_port(self) -> int:
        return master_port(self.job_id)


def master_port(job_id: int) -> int:
    """A rendezvous port that differs between jobs sharing a head node."""
    return MASTER_PORT_BASE + job_id % MASTER_PORT_SPAN


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are outside brackets: 'a[1,2],b' -> ['a[1,2]', 'b']."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise SlurmEnvError(f"unbalanced ']' in host list {text!r}")
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise SlurmEnvError(f"unbalanced '[' in host list {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def _expand_range(spec: str, hostlist: str) -> list[str]:
    """'001-003,007' -> ['001', '002', '003', '007'], keeping zero padding."""
    out = []
    for item in spec.split(","):
        item = item.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not m:
            raise SlurmEnvError(f"bad range {item!r} in host list {hostlist!r}")
        lo, hi = m.group(1), m.group(2) or m.group(1)
        if int(hi) < int(lo):
            raise SlurmEnvError(f"descending range {item!r} in host list {hostlist!r}")
        width = len(lo) if lo.startswith("0") else 0
        out.extend(str(n).zfill(width) for n in range(int(lo), int(hi) + 1))
    return out


def expand_hostlist(hostlist: str) -> list[str]:
    """Expand a Slurm host list, as `scontrol show hostnames` does.

    'gpu[001-003,007],login1' -> ['gpu001', 'gpu002', 'gpu003', 'gpu007', 'login1'];
    several bracket groups multiply: 'r[1-2]n[1-2]' -> r1n1, r1n2, r2n1, r2n2.
    """
    hosts: list[str] = []
    for part in _split_top_level(hostlist):
        pieces = re.split(r"\[([^\]]*)\]", part)  # text, range, text, range, ..., text
        choices = [[pieces[i]] if i % 2 == 0 else _expand_range(pieces[i], hostlist)
                   for i in range(len(pieces))]
        hosts.extend("".join(combo) for combo in product(*choices))
    return hosts


def _count_list(value: str) -> int:
    """Devices in a comma list such as CUDA_VISIBLE_DEVICES='0,1' ('' and 'NoDevFiles' -> 0)."""
    value = value.strip()
    if value in ("", "NoDevFiles", "-1"):
        return 0
    return len([v for v in value.split(",") if v.strip()])


def _gpus_per_node_value(value: str) -> int:
    """SLURM_GPUS_PER_NODE: '4', 'a100:4', 'gpu:a100:4', or a list 'a100:2,v100:2' -> 4."""
    total = 0
    for item in value.split(","):
        last = item.strip().split(":")[-1]
        last = re.sub(r"\(.*\)$", "", last)  # 'a100:4(IDX:0-3)' style suffixes
        if not last.isdigit():
            raise SlurmEnvError(f"cannot read a GPU count from SLURM_GPUS_PER_NODE={value!r}")
        total += int(last)
    return total


def gpus_on_node(env: Mapping[str, str]) -> int:
    """GPUs this node may use: Slurm's allocation first, then CUDA_VISIBLE_DEVICES; else 0."""
    if env.get("SLURM_GPUS_ON_NODE", "").strip():
        value = env["SLURM_GPUS_ON_NODE"].strip()
        if not value.isdigit():
            raise SlurmEnvError(f"SLURM_GPUS_ON_NODE={value!r} is not a number")
        return int(value)
    if env.get("SLURM_GPUS_PER_NODE", "").strip():
        return _gpus_per_node_value(env["SLURM_GPUS_PER_NODE"])
    if "CUDA_VISIBLE_DEVICES" in env:
        return _count_list(env["CUDA_VISIBLE_DEVICES"])
    return 0


def parse_node_addrs(text: str) -> dict[str, str]:
    """'n1=10.0.0.1,n2=10.0.0.2' (sinfo's `%N=%o` lines joined by commas) -> {name: address}.

    A node listed twice (it is in several partitions) must have one address."""
    addrs: dict[str, str] = {}
    for item in text.replace("\n", ",").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, addr = item.partition("=")
        name, addr = name.strip(), addr.strip()
        if not sep or not name or not addr or " " in addr:
            raise SlurmEnvError(f"bad entry {item!r} in GAN_NODE_ADDRS (want NAME=ADDRESS,...)")
        if addrs.get(name, addr) != addr:
            raise SlurmEnvError(f"node {name} has two addresses in GAN_NODE_ADDRS: "
                                f"{addrs[name]} and {addr}")
        addrs[name] = addr
    return addrs


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            return value
    return None


def placement_from_env(env: Mapping[str, str] | None = None) -> Placement:
    """Read this node's placement. Inside `srun` the step's variables describe the nodes the
    launchers actually run on, so they win over the job's."""
    env = os.environ if env is None else env
    job_id = _first(env, "SLURM_JOB_ID", "SLURM_JOBID")
    if job_id is None:
        raise SlurmEnvError("SLURM_JOB_ID is not set: run this inside a Slurm job (sbatch/srun)")
    if not job_id.isdigit():
        raise SlurmEnvError(f"SLURM_JOB_ID={job_id!r} is not a number")
    nodelist = _first(env, "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
    if nodelist is None:
        raise SlurmEnvError("no SLURM_JOB_NODELIST / SLURM_NODELIST in the environment")
    hostnames = tuple(expand_hostlist(nodelist))
    declared = _first(env, "SLURM_STEP_NUM_NODES", "SLURM_JOB_NUM_NODES", "SLURM_NNODES")
    if declared is not None and int(declared) != len(hostnames):
        raise SlurmEnvError(f"node list {nodelist!r} has {len(hostnames)} hosts "
                            f"but Slurm says {declared} nodes")
    rank_text = _first(env, "SLURM_NODEID")
    if rank_text is None:
        # Outside srun (e.g. in the batch script): find ourselves in the list, else the head.
        me = env.get("SLURMD_NODENAME", "")
        rank = hostnames.index(me) if me in hostnames else 0
    else:
        rank = int(rank_text)
    if not 0 <= rank < len(hostnames):
        raise SlurmEnvError(f"SLURM_NODEID={rank} is outside 0..{len(hostnames) - 1}")
    addrs = parse_node_addrs(env.get("GAN_NODE_ADDRS", ""))
    return Placement(job_id=int(job_id), hostnames=hostnames, node_rank=rank,
                     gpus_per_node=gpus_on_node(env),
                     master_addr=addrs.get(hostnames[0], hostnames[0]))


def _given(user_args: Sequence[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in user_args)


def train_flags(placement: Placement, user_args: Sequence[str] = ()) -> list[str]:
    """`gan train` flags for this node, leaving out any option the user gave (theirs win).

    Device: --gpus N when the node has GPUs, else --cpu --processes 1; a user who passes any
    of --cpu / --gpus / --processes chooses the device themselves.
    """
    flags: list[str] = []
    for option, value in (("--nodes", placement.nodes), ("--node-rank", placement.node_rank),
                          ("--master-addr", placement.master_addr),
                          ("--master-port", placement.master_port)):
        if not _given(user_args, option):
            flags += [option, str(value)]
    if not any(_given(user_args, o) for o in ("--cpu", "--gpus", "--processes")):
        if placement.gpus_per_node > 0:
            flags += ["--gpus", str(placement.gpus_per_node)]
        else:
            flags += ["--cpu", "--processes", "1"]
    return flags


def rendezvous_line(placement: Placement, user_args: Sequence[str] = ()) -> str:
    """What the job log says about the rendezvous, once per job (from node 0)."""
    own = [o for o in ("--master-addr", "--master-port") if _given(user_args, o)]
    return (f"slurm_env: job {placement.job_id} on {placement.nodes} node(s) "
            f"{','.join(placement.hostnames)}: rendezvous at {placement.master_addr}:"
            f"{placement.master_port} (head node {placement.hostnames[0]})"
            + (f", overridden by your {' '.join(own)}" if own else ""))


def main(argv: Sequence[str] | None = None) -> int:
    """Print this node's `gan train` flags, one per line; argv after `--` are the user's own
    train options."""
    argv = list(sys.argv[1:] if argv is None else argv)
    user_args = argv[argv.index("--") + 1:] if "--" in argv else argv
    try:
        placement = placement_from_env()
        flags = train_flags(placement, user_args)
    except (SlurmEnvError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if placement.node_rank == 0:  # once per job, into the job log
        print(rendezvous_line(placement, user_args), file=sys.stderr)
    print("\n".join(flags))
    return 0


if __name__ == "__main__":
    sys.exit(main())
