"""One-invocation speed benchmark: the tutorial loop vs `gan train`, per precision.

On the same machine, the same images and the same number of threads, for the coursework
workload (MLP GAN, batch 100, dropout 0.3, Adam), it measures

* the tutorial-style baseline (``benchmarks/tutorial_loop.py``: per-image DataLoader,
  ``.item()`` every step) for ``--warmup`` steps + ``--images`` timed images;
* ``gan train`` (the real CLI, ``python -m gan_dist train``) for 1 warm-up epoch + enough
  epochs for ``--images`` images, timed from the per-epoch ``seconds`` in its metrics.jsonl
  (the first epoch excluded);
* this device's matmul peak (``benchmarks/matmul_peak.py``),

and prints images/s, the ratio gan_dist / tutorial, and the fraction of the matmul peak the
training reaches, then writes everything to a JSON file.

Data: the real MNIST test split (10,000 images) from ``--data-dir`` (default
``../shared/data/mnist``; never copied into the repo), else the package's shipped sample.
`gan train --dataset mnist` reads the *training* file names, so it is pointed at a temp dir
whose ``MNIST/raw/train-*`` are symlinks to the test files: both loops see the same images.

FLOP per image (multiply-adds x 2, Linear layers only; elementwise ops, Adam and the loss are
ignored, they are < 1% of the FLOPs). With F_G = 2 * sum(in*out) over G's layers and F_D the
same for D (forward FLOP per image), F_G1 and F_D1 their first layers' share, and backward =
2 x forward (input and weight gradients) except where autograd skips a gradient nobody needs:
the first layer's input gradient (data or noise), and D's weight gradients in the G step:

    D step:  D forward on real and fake (2 F_D) + G forward (F_G)
             + D backward on both (4 F_D - 2 F_D1: no gradient for the images)
    G step:  G forward (F_G) + D forward (F_D) + D backward to its input only (F_D)
             + G backward (2 F_G - F_G1: no gradient for z)
    total:   8 F_D + 4 F_G - 2 F_D1 - F_G1
           = 8 * 2.917 + 4 * 2.968 - 2 * 1.606 - 0.051 = 31.9 MFLOP per image

Run it (about 5 minutes on a 2-core CPU with the default 3 rounds):

    python benchmarks/run_benchmark.py                       # CPU, precisions no and bf16
    python benchmarks/run_benchmark.py --compile             # adds gan_dist --compile rows
    python benchmarks/run_benchmark.py --arch dcgan --channels-last --compile --processes
    python benchmarks/run_benchmark.py --device cuda --compile   # one GPU; adds fp16
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # gan_dist, installed or not
import matmul_peak  # noqa: E402
import tutorial_dcgan  # noqa: E402
import tutorial_loop  # noqa: E402

from gan_dist.rundir import read_jsonl  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
BATCH = 100


# ---- arithmetic -------------------------------------------------------------------------
def forward_flop(layers: list[tuple[int, int]]) -> int:
    """FLOP of one image's forward pass through these Linear layers (2 per multiply-add)."""
    return 2 * sum(fan_in * fan_out for fan_in, fan_out in layers)


def flop_per_image() -> dict:
    f_g, f_d = forward_flop(matmul_peak.G_LAYERS), forward_flop(matmul_peak.D_LAYERS)
    f_g1, f_d1 = forward_flop(matmul_peak.G_LAYERS[:1]), forward_flop(matmul_peak.D_LAYERS[:1])
    d_step = 2 * f_d + f_g + (4 * f_d - 2 * f_d1)
    g_step = f_g + f_d + f_d + (2 * f_g - f_g1)
    return {"generator_forward": f_g, "discriminator_forward": f_d, "d_step": d_step,
            "g_step": g_step, "total": d_step + g_step, "formula": "8 F_D + 4 F_G - 2 F_D1 - F_G1"}


# ---- the machine --------------------------------------------------------------------------
def cpu_idle_fraction(seconds: float = 0.5) -> float:
    """Share of this machine's CPU time that was idle over `seconds` (Linux; 1.0 elsewhere)."""
    def read():
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return fields[3] + fields[4], sum(fields)

    try:
        idle0, total0 = read()
        time.sleep(seconds)
        idle1, total1 = read()
    except OSError:
        return 1.0
    return (idle1 - idle0) / max(1, total1 - total0)


def wait_for_idle(max_seconds: float, threshold: float = 0.9) -> float:
    """Other processes spoil CPU timings (2 busy cores halve them): wait until idle, up to a
    limit, and return the idle fraction finally seen (recorded with each measurement)."""
    deadline = time.monotonic() + max_seconds
    idle = cpu_idle_fraction()
    while idle < threshold and time.monotonic() < deadline:
        idle = cpu_idle_fraction(1.0)
    if idle < threshold:
        print(f"  warning: CPU only {idle:.0%} idle before this measurement; figures may be low",
              file=sys.stderr)
    return round(idle, 3)


def machine(device: str) -> dict:
    info = {"hostname": socket.gethostname(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "device": device}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


# ---- data ---------------------------------------------------------------------------------
def gan_data_args(data_dir: Path | None, tmp: Path) -> tuple[list[str], str]:
    """`gan train` options that make it read the same images as the tutorial loop."""
    if tutorial_loop.idx_dir_usable(data_dir):
        raw = tmp / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for kind in ("images-idx3", "labels-idx1"):
            src = next(p for p in (data_dir / f"t10k-{kind}-ubyte", data_dir / f"t10k-{kind}-ubyte.gz")
                       if p.is_file())
            (raw / src.name.replace("t10k", "train")).symlink_to(src.resolve())
        return ["--dataset", "mnist", "--data-dir", str(tmp)], "mnist-test"
    return ["--dataset", "mnist-sample"], "mnist-sample"


def dataset_size(data_dir: Path | None) -> int:
    """Images in the IDX test split (its header says: 10,000 for MNIST's), else the 5,000 shipped."""
    if not tutorial_loop.idx_dir_usable(data_dir):
        return 5_000
    name = tutorial_loop.IDX_FILES[0]
    plain = data_dir / name
    with (open(plain, "rb") if plain.is_file() else gzip.open(data_dir / f"{name}.gz", "rb")) as f:
        return int.from_bytes(f.read(8)[4:8], "big")


# ---- the two loops -----------------------------------------------------------------------
def loop_label(loop: str, flags: tuple[str, ...] = ()) -> str:
    """A row's name: the loop and its extra `gan train` switches, e.g. gan_dist+channels_last."""
    return loop + "".join("+" + f for f in flags)


def run_gan(*, precision: str, flags: tuple[str, ...], device: str, data_args: list[str], images: int,
            epoch_images: int, out_dir: Path, threads: int, arch: str = "mlp", batch: int = BATCH,
            processes: int = 1) -> dict:
    """`gan train` in a subprocess, with `flags` (compile, channels_last) as extra switches;
    images/s over every epoch after the first."""
    epochs = 1 + max(1, math.ceil(images / epoch_images))
    name = f"bench-{arch}-{precision}{''.join('-' + f for f in flags)}-p{processes}"
    cmd = [sys.executable, "-m", "gan_dist", "train", *data_args, "--epochs", str(epochs),
           "--batch-size", str(batch), "--precision", precision, "--arch", arch,
           "--sample-epochs", str(epochs), "--out", str(out_dir), "--name", name]
    cmd += ["--d-dropout", "0.3"] if arch == "mlp" else []
    cmd += ["--cpu"] if device == "cpu" else ["--gpus", "1"]
    if precision == "bf16" and device == "cpu":  # measured on any CPU, native bf16 or not
        cmd += ["--allow-slow-bf16"]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    cmd += ["--" + f.replace("_", "-") for f in flags]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"gan train failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    run_dir = out_dir / name
    rows, _ = read_jsonl(run_dir / "metrics.jsonl")
    timed = rows[1:]
    timed_images = sum(r.get("steps", epoch_images // batch) * batch for r in timed)
    seconds = sum(r["seconds"] for r in timed)
    config = json.loads((run_dir / "config.json").read_text())
    return {
        "loop": loop_label("gan_dist", flags) + (f" {processes} proc" if processes > 1 else ""),
        "precision": precision, "arch": arch, "processes": processes,
        "device": device, "threads": config.get("env", {}).get("threads_per_process"),
        "command": " ".join(cmd[1:]), "epochs": epochs, "warmup_epochs": 1,
        "images": timed_images, "seconds": round(seconds, 4),
        "images_per_second": round(timed_images / seconds, 1),
        "first_epoch_seconds": round(rows[0]["seconds"], 4),
        "d_loss": round(timed[-1]["d_loss"], 4), "g_loss": round(timed[-1]["g_loss"], 4),
    }


def best(results: list[dict]) -> dict:
    """Best of the repeats (the least disturbed by anything else on the machine)."""
    top = max(results, key=lambda r: r["images_per_second"])
    return {**top, "repeats_images_per_second": [r["images_per_second"] for r in results]}


# ---- main ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20_000, help="timed images per measurement")
    p.add_argument("--warmup", type=int, default=20, help="tutorial-loop steps excluded from timing "
                   "(gan_dist: its first epoch is excluded)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--precisions", default=None,
                   help="comma list of no,bf16,fp16 (default: no,bf16; fp16 added on cuda)")
    p.add_argument("--compile", action="store_true", help="also measure `gan train --compile`")
    p.add_argument("--channels-last", action="store_true",
                   help="also measure `gan train --channels-last` (conv networks: --arch dcgan)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="a folder with MNIST's t10k IDX files (default: ../shared/data/mnist for the "
                        "mlp rows, the shipped 5,000-digit sample for the dcgan rows)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for both loops (default: torch's default here)")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds over all rows; each row keeps its best round")
    p.add_argument("--wait-idle", type=float, default=120.0,
                   help="seconds to wait for an idle CPU before each measurement")
    p.add_argument("--skip-peak", action="store_true", help="do not measure the matmul peak")
    p.add_argument("--arch", default="mlp", choices=["mlp", "dcgan"],
                   help="mlp: the coursework workload (batch 100); dcgan: tutorial_dcgan.py vs "
                   "`gan train --arch dcgan` on the shipped sample at batch 128 (no FLOP/peak columns)")
    p.add_argument("--processes", action="store_true",
                   help="also measure `gan train --cpu --processes 2` (one thread each) in fp32")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON result file (default benchmarks/results/<hostname or GPU>.json)")
    args = p.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is visible: use --device cpu", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    precisions = (args.precisions.split(",") if args.precisions
                  else ["no", "bf16"] + (["fp16"] if args.device == "cuda" else []))
    if args.device == "cpu" and "fp16" in precisions:
        print("error: fp16 is for GPUs here: use --precisions no,bf16", file=sys.stderr)
        return 2
    dcgan = args.arch == "dcgan"
    batch = tutorial_dcgan.BATCH if dcgan else BATCH
    baseline = tutorial_dcgan if dcgan else tutorial_loop
    if dcgan:  # the data for the DCGAN rows: the shipped 5,000-digit sample
        args.skip_peak = True
    elif args.data_dir is None:
        args.data_dir = tutorial_loop.DEFAULT_DATA_DIR
    data_dir = args.data_dir if tutorial_loop.idx_dir_usable(args.data_dir) else None
    flop = flop_per_image()
    info = machine(args.device)
    print(f"machine: {info.get('gpu') or info.get('cpu')}  ({info['hostname']}), "
          f"{threads} threads, torch {torch.__version__}")
    if not dcgan:
        print(f"FLOP per image: {flop['total'] / 1e6:.1f} M ({flop['formula']})")

    peak = None
    if not args.skip_peak:
        wait_for_idle(args.wait_idle)
        print("measuring matmul peak ...", flush=True)
        peak = matmul_peak.measure("cuda" if args.device == "cuda" else "cpu")

    extra = ([("compile",)] if args.compile else []) + ([("channels_last",)] if args.channels_last else [])
    if args.compile and args.channels_last:
        extra.append(("channels_last", "compile"))
    variants = [(precision, loop, flags) for precision in precisions
                for loop, flags in [("tutorial", ()), ("gan_dist", ()), *(("gan_dist", f) for f in extra)]]
    if args.processes:
        variants.append(("no", "gan_dist 2 proc", ()))
    measured: dict[tuple, list[dict]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="gan_bench_") as tmp:
        data_args, data_name = gan_data_args(data_dir, Path(tmp) / "data")
        # Repeats are rounds over every row, not back-to-back runs of one row: a noisy spell
        # on a shared machine then hits all rows alike instead of one row's every repeat.
        for rep in range(args.repeats):
            for precision, loop, flags in variants:
                label = loop_label(loop, flags)
                idle = wait_for_idle(args.wait_idle)
                print(f"{label:29s} precision={precision:4s} round {rep + 1}/{args.repeats} ...", flush=True)
                if loop == "tutorial":
                    r = baseline.run(images=args.images, warmup=args.warmup, precision=precision,
                                     device=args.device, data_dir=data_dir, batch_size=batch)
                else:
                    r = run_gan(precision=precision, flags=flags, device=args.device,
                                data_args=data_args, images=args.images,
                                epoch_images=dataset_size(data_dir) // batch * batch,
                                out_dir=Path(tmp) / f"runs{rep}", threads=threads, arch=args.arch, batch=batch,
                                processes=2 if loop.endswith("2 proc") else 1)
                r["cpu_idle_before"] = idle
                measured[(precision, loop, flags)].append(r)
    rows = [best(measured[v]) for v in variants]

    # ratios and fraction of peak
    base = {r["precision"]: r["images_per_second"] for r in rows if r["loop"].startswith("tutorial")}
    for r in rows:
        r["ratio_vs_tutorial"] = round(r["images_per_second"] / base[r["precision"]], 2)
        if "no" in base:  # the baseline is the tutorial loop in fp32
            r["ratio_vs_tutorial_fp32"] = round(r["images_per_second"] / base["no"], 2)
        r["gflops"] = None if dcgan else round(r["images_per_second"] * flop["total"] / 1e9, 1)
        if peak:
            key = "fp32" if r["precision"] == "no" else r["precision"]
            r["fraction_of_peak"] = round(r["gflops"] / peak[key]["large_gflops"], 3)
            r["fraction_of_model_shape_peak"] = round(r["gflops"] / peak[key]["all_shapes_gflops"], 3)

    print()
    head = (f"{'loop':29s} {'precision':9s} {'images/s':>9s} {'ratio':>6s} {'vs fp32':>7s} "
            f"{'GFLOP/s':>8s} {'of peak':>8s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        frac = f"{r['fraction_of_peak']:.1%}" if "fraction_of_peak" in r else "-"
        vs32 = f"{r['ratio_vs_tutorial_fp32']:6.2f}x" if "ratio_vs_tutorial_fp32" in r else "      -"
        gflops = f"{r['gflops']:8.1f}" if r["gflops"] is not None else "       -"
        print(f"{r['loop']:29s} {r['precision']:9s} {r['images_per_second']:9,.0f} "
              f"{r['ratio_vs_tutorial']:5.2f}x {vs32} {gflops} {frac:>8s}")
    print("ratio: vs the tutorial loop at the same precision; vs fp32: vs the tutorial loop in fp32")
    if peak:
        for key in ("fp32", "bf16", "fp16"):
            if key in peak:
                print(f"matmul peak {key}: {peak[key]['large_gflops']:,.0f} GFLOP/s "
                      f"({peak['size']}^3), {peak[key]['all_shapes_gflops']:,.0f} GFLOP/s at the "
                      f"model's batch-{BATCH} shapes")

    result = {
        "machine": info, "threads": threads, "data": data_name, "batch_size": batch, "arch": args.arch,
        "images_per_measurement": args.images, "warmup_steps": args.warmup, "repeats": args.repeats,
        "flop_per_image": flop, "matmul_peak": peak, "results": rows,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    out = args.out
    if out is None:
        tag = info.get("gpu") or info["hostname"]
        tag += "-dcgan" if dcgan else ""
        out = RESULTS_DIR / f"{''.join(c if c.isalnum() or c in '-_.' else '-' for c in tag)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
