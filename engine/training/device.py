"""Which device to train on, and how busy it is."""

from __future__ import annotations

import re

import torch

from engine.config import ConfigError
from engine.events import DeviceStats

_MB = 1024 * 1024


def resolve_device(spec: str) -> torch.device:
    """ "auto" -> the first CUDA device if there is one, else the CPU; also "cpu", "cuda", "cuda:N"."""
    spec = spec.strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match is None:
        raise ConfigError(f"train.device: expected auto, cpu, cuda or cuda:N, got {spec!r}")
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device: {spec!r} requested but this torch build sees no CUDA device")
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ConfigError(f"train.device: {spec!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return torch.device("cuda", index)


def device_stats(device: torch.device) -> DeviceStats:
    """Utilisation and memory: NVML for a GPU when available (else torch's own counters), psutil for the CPU.

    CPU utilisation is the system-wide percentage since the previous call (the first call reports 0.0).
    """
    if device.type == "cuda":
        return _cuda_stats(device)
    import psutil

    return DeviceStats(
        device="cpu",
        utilization=psutil.cpu_percent(interval=None),
        memory_used_mb=psutil.Process().memory_info().rss / _MB,
        memory_total_mb=psutil.virtual_memory().total / _MB,
    )


def _cuda_stats(device: torch.device) -> DeviceStats:
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    name = f"cuda:{index} ({props.name})"
    nvml = _nvml_stats(props, index)
    if nvml is not None:
        return DeviceStats(name, *nvml)
    return DeviceStats(name, None, torch.cuda.memory_reserved(index) / _MB, props.total_memory / _MB)


def _nvml_stats(props, index: int) -> tuple[float, float, float] | None:
    """(utilisation %, used MB, total MB) from NVML, or None when NVML is missing or refuses."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver library, or no permission: fall back to torch's counters
        return None
    try:
        try:  # the UUID survives CUDA_VISIBLE_DEVICES renumbering; the index is the fallback
            handle = pynvml.nvmlDeviceGetHandleByUUID(f"GPU-{props.uuid}")
        except Exception:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu), memory.used / _MB, memory.total / _MB
    except Exception:
        return None
    finally:
        pynvml.nvmlShutdown()
