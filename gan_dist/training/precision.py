"""Which mixed precision a run uses: what was asked, what the device does natively, and why.

bf16 pays only where the hardware multiplies bf16 natively: CUDA GPUs of compute capability
8.0 and later, x86 CPUs with AVX512_BF16 or AMX, Arm CPUs with the BF16 extension. Elsewhere
every bf16 product is emulated: on the 2-core AMD EPYC (AVX2, no AVX-512) this project is
developed on, the coursework MLP trained MEASURED_CPU_SLOWDOWN times slower in bf16 than in
fp32 (docs/accidents.md has the measurement). So:

- `--precision bf16` on such a device is refused with one line, unless `--allow-slow-bf16`
  says the user wants bf16 numerics anyway (testing them on a laptop);
- `--precision auto` picks bf16 where it is native and fp32 ("no") elsewhere;
- `--precision fp16` needs a GPU.

What the device can do comes from torch's own capability queries (torch.cpu.get_capabilities,
cpuinfo underneath; torch.cuda.is_bf16_supported), read in the two functions below, which the
tests replace. The choice is checked by the launcher before anything is written, and made
again by each training process on its own device; config.json records it with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from gan_dist.errors import GanError

# `gan train` images/s of the coursework MLP (batch 100, 2 threads) on this project's 2-core AMD
# EPYC (AVX2, no AVX-512), quiet machine (issue 27); benchmarks/bf16_cpu.py confirmed the order
# on the same CPU, busy: 10.7-11.3x per CPU-second of the step, one thread (docs/accidents.md).
MEASURED_CPU = {"fp32": 2022, "bf16": 116}
MEASURED_CPU_SLOWDOWN = round(MEASURED_CPU["fp32"] / MEASURED_CPU["bf16"])  # 17
# cpuinfo's names (torch.cpu.get_capabilities) of the features that make bf16 native
CPU_BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16", "sve_bf16")


def cpu_capabilities() -> dict:
    """torch's view of this CPU: cpuinfo's feature flags plus its vector capability name."""
    import torch

    caps = dict(torch.cpu.get_capabilities()) if hasattr(torch.cpu, "get_capabilities") else {
        "avx512_bf16": torch.cpu._is_avx512_bf16_supported(), "amx_bf16": torch.cpu._is_amx_tile_supported()}
    caps["capability"] = torch.backends.cpu.get_cpu_capability()
    return caps


def cuda_bf16_native() -> bool:
    """Whether this process's CUDA device multiplies bf16 natively (not by emulation)."""
    import torch

    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch before 2.3 had no emulation path to exclude
        return torch.cuda.is_bf16_supported()


@dataclass(frozen=True)
class PrecisionChoice:
    asked: str
    chosen: str  # what Accelerate gets: no | bf16 | fp16
    reason: str

    def record(self) -> dict:
        """config.json's "precision_choice"."""
        return {"asked": self.asked, "chosen": self.chosen, "reason": self.reason}


def describe_cpu(caps: dict) -> str:
    name = caps.get("cpu_name") or "this CPU"
    native = [f for f in CPU_BF16_FEATURES if caps.get(f)]
    return f"{name} ({caps.get('capability', '?')}" + (f", {', '.join(native)})" if native else ")")


def choose_precision(asked: str, device_type: str, *, allow_slow_bf16: bool = False) -> PrecisionChoice:
    """The precision to train in on `device_type` ("cpu" or "cuda"); GanError where `asked`
    cannot or should not run there."""
    if device_type == "cuda":
        native = cuda_bf16_native()
        where = "this GPU"
    else:
        caps = cpu_capabilities()
        native = any(caps.get(f) for f in CPU_BF16_FEATURES)
        where = describe_cpu(caps)
    if asked == "fp16":
        if device_type != "cuda":
            raise GanError("--precision fp16 needs a GPU: use --precision no (or auto) on the CPU")
        return PrecisionChoice(asked, "fp16", "asked for; fp16 with loss scaling on the GPU")
    if asked == "no":
        return PrecisionChoice(asked, "no", "asked for: fp32")
    if asked == "auto":
        if native:
            return PrecisionChoice(asked, "bf16", f"auto: {where} has native bf16")
        return PrecisionChoice(asked, "no", f"auto: {where} has no native bf16, so fp32")
    if native:
        return PrecisionChoice(asked, "bf16", f"asked for; {where} has native bf16")
    if allow_slow_bf16:
        return PrecisionChoice(asked, "bf16", f"asked for with --allow-slow-bf16; {where} has no native bf16: "
                                              "emulated, many times slower than fp32")
    if device_type == "cuda":
        raise GanError("--precision bf16: this GPU has no native bf16 (compute capability below 8.0), so "
                       "bf16 would be emulated and slow; use --precision fp16 or no (or auto), or add "
                       "--allow-slow-bf16 to test bf16 numerics anyway")
    raise GanError(f"--precision bf16: {where} has no native bf16 (no avx512_bf16, AMX or Arm BF16), so every bf16 "
                   f"product is emulated: the coursework MLP trained at {MEASURED_CPU['bf16']:,} images/s in bf16 "
                   f"against {MEASURED_CPU['fp32']:,} in fp32 on such a CPU ({MEASURED_CPU_SLOWDOWN}x slower); use "
                   "--precision no (or auto), or add --allow-slow-bf16 to test bf16 numerics anyway")


def settle_precision(cfg, device_type: str):
    """(cfg with its precision made concrete for `device_type`, the PrecisionChoice)."""
    try:
        choice = choose_precision(cfg.precision, device_type, allow_slow_bf16=cfg.allow_slow_bf16)
    except GanError as err:
        if not cfg.resume:
            raise
        # a resumed run keeps its precision unless told otherwise: say how
        raise GanError(f"{err} (resuming: --allow-changes --precision no)") from None
    return cfg.replace(precision=choice.chosen), choice
