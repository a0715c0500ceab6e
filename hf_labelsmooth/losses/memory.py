"""Whether a dense K×K matrix fits, asked before it is allocated: a loss with too many classes for dense rows says so
at construction, with the ``top_n`` fix, instead of failing inside torch's allocator."""
from __future__ import annotations

import os

import torch

FLOAT32_BYTES = 4


def available_bytes(device: torch.device | str | None = None) -> int | None:
    """Memory that can still be allocated on `device` (CPU: Linux's MemAvailable, else free pages; CUDA:
    `torch.cuda.mem_get_info`); None where the platform does not say."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:  # counts reclaimable page cache, unlike free pages
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not POSIX, or the name is unknown here
        return None


def check_dense_fits(num_classes: int, matrices: int, what: str, device: torch.device | str | None = None) -> None:
    """Raise before allocating `matrices` K×K float32 tensors (`what`) that `device`'s free memory cannot hold.

    Raises:
        ValueError: Naming the bytes needed and available, and ``top_n`` (K×N rows instead of K×K).
    """
    need = matrices * num_classes * num_classes * FLOAT32_BYTES
    free = available_bytes(device)
    if free is None or need <= free:
        return
    raise ValueError(f"Expected the dense {what} ({matrices} × {num_classes}×{num_classes} float32, "
                     f"{need / 1e9:.1f} GB) to fit in the {free / 1e9:.1f} GB of memory available but got "
                     f"num_classes={num_classes}, too many for dense rows. Pass top_n (e.g. top_n=64: K×N rows "
                     "instead of K×K).")
