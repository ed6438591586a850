"""Slurm placement from environment variables: host lists, node rank, head node, GPUs, flags.

The environments below are what Slurm 22.05 sets inside `srun --ntasks-per-node=1` in a batch
job (trimmed to the variables that matter), for 1, 2 and 8 nodes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gan_dist.slurm_env import (
    SlurmEnvError,
    expand_hostlist,
    gpus_on_node,
    main,
    master_port,
    parse_node_addrs,
    placement_from_env,
    train_flags,
)


def srun_env(job_id: int, nodelist: str, nodes: int, node_id: int, **extra: str) -> dict[str, str]:
    """What one srun task (one per node) sees."""
    env = {
        "SLURM_JOB_ID": str(job_id),
        "SLURM_JOBID": str(job_id),
        "SLURM_JOB_NODELIST": nodelist,
        "SLURM_NODELIST": nodelist,
        "SLURM_STEP_NODELIST": nodelist,
        "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_NNODES": str(nodes),
        "SLURM_STEP_NUM_NODES": str(nodes),
        "SLURM_NODEID": str(node_id),
        "SLURM_PROCID": str(node_id),
        "SLURM_LOCALID": "0",
        "SLURM_NTASKS": str(nodes),
        "SLURM_TASKS_PER_NODE": f"1(x{nodes})" if nodes > 1 else "1",
        "SLURM_CPUS_PER_TASK": "8",
        "SLURM_SUBMIT_DIR": "/home/ada/gan",
    }
    env.update(extra)
    return env


# --- host lists ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hostlist", "hosts"),
    [
        ("vm", ["vm"]),
        ("node7", ["node7"]),
        ("gpu[001-003,007],login1", ["gpu001", "gpu002", "gpu003", "gpu007", "login1"]),
        ("a[1-2],b[09-11]", ["a1", "a2", "b09", "b10", "b11"]),
        ("c[8-11]", ["c8", "c9", "c10", "c11"]),
        ("rack[1-2]-n[01-02]", ["rack1-n01", "rack1-n02", "rack2-n01", "rack2-n02"]),
        ("x[3],y", ["x3", "y"]),
        ("node-a,node-b", ["node-a", "node-b"]),
    ],
)
def test_expand_hostlist(hostlist, hosts):
    assert expand_hostlist(hostlist) == hosts


@pytest.mark.parametrize("bad", ["gpu[1-3", "gpu1-3]", "gpu[a-b]", "gpu[5-2]"])
def test_expand_hostlist_rejects_malformed(bad):
    with pytest.raises(SlurmEnvError):
        expand_hostlist(bad)


# --- GPUs per node ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "gpus"),
    [
        ({}, 0),
        ({"SLURM_GPUS_ON_NODE": "4"}, 4),
        ({"SLURM_GPUS_ON_NODE": "8", "CUDA_VISIBLE_DEVICES": "0"}, 8),  # allocation wins
        ({"SLURM_GPUS_PER_NODE": "2"}, 2),
        ({"SLURM_GPUS_PER_NODE": "a100:4"}, 4),
        ({"SLURM_GPUS_PER_NODE": "gpu:a100:4"}, 4),
        ({"CUDA_VISIBLE_DEVICES": "0,1,2"}, 3),
        ({"CUDA_VISIBLE_DEVICES": ""}, 0),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, 0),
        ({"SLURM_GPUS_ON_NODE": "0"}, 0),
    ],
)
def test_gpus_on_node(env, gpus):
    assert gpus_on_node(env) == gpus


# --- placements for 1, 2 and 8 nodes ------------------------------------------------------
def test_one_node_cpu():
    p = placement_from_env(srun_env(4242, "vm", 1, 0))
    assert (p.nodes, p.node_rank, p.master_addr, p.gpus_per_node) == (1, 0, "vm", 0)
    assert p.master_port == 10000 + 4242
    assert train_flags(p) == ["--nodes", "1", "--node-rank", "0", "--master-addr", "vm",
                              "--master-port", "14242", "--cpu", "--processes", "1"]


def test_two_nodes_gpus_rank_one():
    env = srun_env(123456, "gpu[017-018]", 2, 1, SLURM_GPUS_ON_NODE="4",
                   SLURM_GPUS_PER_NODE="a100:4", CUDA_VISIBLE_DEVICES="0,1,2,3")
    p = placement_from_env(env)
    assert p.hostnames == ("gpu017", "gpu018")
    assert (p.nodes, p.node_rank, p.master_addr, p.gpus_per_node) == (2, 1, "gpu017", 4)
    assert p.master_port == 10000 + 123456 % 20000
    assert train_flags(p) == ["--nodes", "2", "--node-rank", "1", "--master-addr", "gpu017",
                              "--master-port", str(p.master_port), "--gpus", "4"]


@pytest.mark.parametrize("node_id", range(8))
def test_eight_nodes_every_rank_agrees_on_head_and_port(node_id):
    nodelist = "gpu[001-003,007],dgx[10-13]"
    env = srun_env(9_876_543, nodelist, 8, node_id, SLURM_GPUS_ON_NODE="8")
    p = placement_from_env(env)
    assert p.nodes == 8
    assert p.node_rank == node_id
    assert p.hostnames[node_id] == ["gpu001", "gpu002", "gpu003", "gpu007",
                                    "dgx10", "dgx11", "dgx12", "dgx13"][node_id]
    assert p.master_addr == "gpu001"
    assert p.master_port == master_port(9_876_543) == 10000 + 9_876_543 % 20000
    flags = train_flags(p)
    assert flags[flags.index("--node-rank") + 1] == str(node_id)
    assert flags[-2:] == ["--gpus", "8"]


def test_step_node_list_wins_over_job_node_list():
    # A step on a subset of the job's nodes: SLURM_NODEID counts within the step.
    env = srun_env(77, "n[1-4]", 4, 1)
    env.update(SLURM_STEP_NODELIST="n[3-4]", SLURM_STEP_NUM_NODES="2")
    p = placement_from_env(env)
    assert (p.hostnames, p.node_rank, p.master_addr) == (("n3", "n4"), 1, "n3")


def test_batch_script_without_nodeid_finds_itself():
    env = srun_env(5, "n[1-2]", 2, 0)
    del env["SLURM_NODEID"]
    env["SLURMD_NODENAME"] = "n2"
    assert placement_from_env(env).node_rank == 1


def test_ports_differ_between_jobs_and_stay_in_range():
    ports = {master_port(j) for j in range(1, 50_000, 7)}
    assert min(ports) >= 10000 and max(ports) < 30000
    assert master_port(1) != master_port(2)


# --- user options win ---------------------------------------------------------------------
def test_user_device_choice_suppresses_derived_device():
    p = placement_from_env(srun_env(1, "gpu[1-2]", 2, 0, SLURM_GPUS_ON_NODE="4"))
    flags = train_flags(p, ["--cpu", "--processes", "2", "--epochs", "3"])
    assert "--gpus" not in flags and "--cpu" not in flags and "--processes" not in flags
    assert train_flags(p, ["--gpus=2"])[-2:] == ["--master-port", str(p.master_port)]


def test_user_master_port_is_kept():
    p = placement_from_env(srun_env(1, "vm", 1, 0))
    flags = train_flags(p, ["--master-port", "29500"])
    assert "--master-port" not in flags


# --- errors -------------------------------------------------------------------------------
def test_outside_slurm_is_a_clear_error():
    with pytest.raises(SlurmEnvError, match="SLURM_JOB_ID"):
        placement_from_env({"PATH": "/usr/bin"})


def test_node_count_mismatch_is_an_error():
    with pytest.raises(SlurmEnvError, match="3 nodes"):
        placement_from_env(srun_env(1, "n[1-2]", 3, 0))


def test_node_rank_out_of_range_is_an_error():
    with pytest.raises(SlurmEnvError, match="SLURM_NODEID"):
        placement_from_env(srun_env(1, "n[1-2]", 2, 5))


# --- the command train.sh runs --------------------------------------------------------------
def test_main_prints_one_flag_per_line(monkeypatch, capsys):
    for key in list(os.environ):
        if key.startswith("SLURM") or key in ("CUDA_VISIBLE_DEVICES", "GAN_NODE_ADDRS"):
            monkeypatch.delenv(key)
    for key, value in srun_env(31, "node[01-02]", 2, 1).items():
        monkeypatch.setenv(key, value)
    assert main(["--", "--epochs", "3", "--processes", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "--nodes", "2", "--node-rank", "1", "--master-addr", "node01", "--master-port", "10031"]


def test_module_outside_slurm_fails_with_one_line():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
    proc = subprocess.run([sys.executable, "-m", "gan_dist.slurm_env"], env=env,
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("error: SLURM_JOB_ID is not set")
    assert len(proc.stderr.strip().splitlines()) == 1


# --- the rendezvous address: the head node's NodeAddr, passed by train.sh ----------------------
def test_head_node_address_comes_from_node_addrs():
    # The local test cluster: node names that are not host names, all on 127.0.0.1.
    env = srun_env(12, "n[1-2]", 2, 1, GAN_NODE_ADDRS="n1=127.0.0.1,n2=127.0.0.1")
    p = placement_from_env(env)
    assert (p.master_addr, p.node_rank) == ("127.0.0.1", 1)
    flags = train_flags(p)
    assert flags[flags.index("--master-addr") + 1] == "127.0.0.1"


def test_address_of_the_step_head_not_of_the_first_listed():
    env = srun_env(12, "gpu[017-018]", 2, 0,
                   GAN_NODE_ADDRS="gpu016=10.1.0.16,gpu018=10.1.0.18,gpu017=10.1.0.17")
    assert placement_from_env(env).master_addr == "10.1.0.17"


def test_without_an_address_for_the_head_its_name_is_used():
    assert placement_from_env(srun_env(12, "gpu[017-018]", 2, 0)).master_addr == "gpu017"
    env = srun_env(12, "gpu[017-018]", 2, 0, GAN_NODE_ADDRS="gpu018=10.1.0.18")
    assert placement_from_env(env).master_addr == "gpu017"


@pytest.mark.parametrize(
    ("text", "addrs"),
    [
        ("", {}),
        ("n1=127.0.0.1", {"n1": "127.0.0.1"}),
        ("n1=127.0.0.1,n2=127.0.0.1,n1=127.0.0.1", {"n1": "127.0.0.1", "n2": "127.0.0.1"}),
        ("a=10.0.0.1\nb=node-b-ib\n", {"a": "10.0.0.1", "b": "node-b-ib"}),
        ("v6=fe80::1", {"v6": "fe80::1"}),
    ],
)
def test_parse_node_addrs(text, addrs):
    assert parse_node_addrs(text) == addrs


@pytest.mark.parametrize("bad", ["n1", "n1=", "=10.0.0.1", "n1=10.0.0.1,n1=10.0.0.2", "n1=a b"])
def test_parse_node_addrs_rejects_malformed(bad):
    with pytest.raises(SlurmEnvError, match="GAN_NODE_ADDRS"):
        parse_node_addrs(bad)


def test_node_zero_logs_the_rendezvous_once(monkeypatch, capsys):
    for key in list(os.environ):
        if key.startswith("SLURM") or key in ("CUDA_VISIBLE_DEVICES", "GAN_NODE_ADDRS"):
            monkeypatch.delenv(key)
    for node_id in (0, 1):
        env = srun_env(31, "n[1-2]", 2, node_id, GAN_NODE_ADDRS="n1=10.0.0.1,n2=10.0.0.2")
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        assert main(["--", "--epochs", "3"]) == 0
    err = capsys.readouterr().err.splitlines()
    line = "slurm_env: job 31 on 2 node(s) n1,n2: rendezvous at 10.0.0.1:10031 (head node n1)"
    assert err == [line]
