"""How a job's request reads, the same in the console and the CLI.

Short, for tables: `4c 16G 2gpu`, `1c 512M`, `2c 8G gpu:20G` (20 GiB of one GPU's memory). The
old `1c 1G 1g` put a GiB of memory and a GPU one letter-case apart.
Long, for a job's detail: `4 CPUs, 16 GiB, 2 GPUs`, `1 CPU, 512 MiB, 1 GPU`,
`2 CPUs, 8 GiB, 20 GiB of one GPU`.
"""

from __future__ import annotations

from lepton_tui.validate import format_size_mb

UNITS = {"M": "MiB", "G": "GiB", "T": "TiB"}


def plural(count: float, word: str, words: str | None = None) -> str:
    """`1 GPU`, `2 GPUs`, `0.5 CPUs`: the count and the word, in the plural unless it is one."""
    return f"{count:g} {word if count == 1 else (words or word + 's')}"


def size_words(mb: float) -> str:
    """MiB as `512 MiB`, `16 GiB`, `1.5 TiB`."""
    short = format_size_mb(mb)
    return f"{short[:-1]} {UNITS[short[-1]]}" if short[-1:] in UNITS else short


def short_request(cpus: float, mem_mb: float, gpus: int, gpu_mem_mb: float = 0) -> str:
    """`4c 16G 2gpu` (whole GPUs) or `2c 8G gpu:20G` (a share of one GPU's memory)."""
    text = f"{cpus:g}c {format_size_mb(mem_mb)}"
    if gpus:
        text += f" {gpus}gpu"
    elif gpu_mem_mb:
        text += f" gpu:{format_size_mb(gpu_mem_mb)}"
    return text


def long_request(cpus: float, mem_mb: float, gpus: int, gpu_mem_mb: float = 0) -> str:
    """`4 CPUs, 16 GiB, 2 GPUs`, or `2 CPUs, 8 GiB, 20 GiB of one GPU`."""
    parts = [plural(cpus, "CPU"), size_words(mem_mb)]
    if gpus:
        parts.append(plural(gpus, "GPU"))
    elif gpu_mem_mb:
        parts.append(f"{size_words(gpu_mem_mb)} of one GPU")
    return ", ".join(parts)
