"""The machines a model is placed on: fast GPU memory, an offload tier, and each one's bandwidth."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CLAIM_DEVICES", "DEVICES", "DGX_SPARK", "DGX_STATION", "DGX_STATION_HBM", "Device", "GiB", "TWO_SPARKS"]

GiB = 2**30


@dataclass(frozen=True)
class Device:
    """Memory a model server can use on one machine: fast GPU memory and, where there is one, an offload tier.

    ``usable_bytes`` is what the GPU allocates from (what vLLM's ``--gpu-memory-utilization``
    covers): HBM on a GB300, the unified LPDDR5X on a GB10. ``offload_bytes`` is CPU memory the GPU
    reaches over NVLink-C2C by offloading (``--cpu-offload-gb``) or unified-memory allocation, at
    ``offload_bandwidth`` — far slower than ``bandwidth``.
    """

    name: str
    usable_bytes: float
    note: str = ""
    bandwidth: float = 0.0
    offload_bytes: float = 0.0
    offload_bandwidth: float = 0.0
    #: share of each tier a server is given on this machine (vLLM's ``--gpu-memory-utilization`` in NVIDIA's own commands)
    utilization: float = 0.8


_STATION_SOURCE = ("NVIDIA DGX Station material: up to 279 GB HBM3e of 775 GB coherent memory (279 + 496 LPDDR5X); "
                   "its vLLM commands use --gpu-memory-utilization 0.9 (0.95 for Kimi K2)")
DGX_SPARK = Device("DGX Spark", 119.7 * GiB, "GB10: 128 GB LPDDR5X shared with the CPU; CUDA sees ~119.7 GiB; 273 GB/s; "
                   "NVIDIA's Spark vLLM playbook gives the server 0.8", bandwidth=273e9, utilization=0.8)
TWO_SPARKS = Device("2× DGX Spark", 2 * 119.7 * GiB,
                    "two GB10s over ConnectX-7, tensor-parallel (each reads half the weights); link latency not counted",
                    bandwidth=2 * 273e9, utilization=0.8)
DGX_STATION_HBM = Device("DGX Station (HBM)", 279e9, "GB300 GPU memory only: 279 GB HBM3e at 8 TB/s. " + _STATION_SOURCE,
                         bandwidth=8e12, utilization=0.9)
DGX_STATION = Device("DGX Station (HBM + LPDDR5X)", 279e9,
                     "279 GB HBM3e at 8 TB/s, then 496 GB LPDDR5X over NVLink-C2C at 396 GB/s by offload. " + _STATION_SOURCE,
                     bandwidth=8e12, offload_bytes=496e9, offload_bandwidth=396e9, utilization=0.9)
DEVICES: tuple[Device, ...] = (DGX_SPARK, DGX_STATION_HBM, DGX_STATION)
#: The machines NVIDIA's claims name: one Spark, two Sparks linked, a Station on its HBM and with its CPU memory.
CLAIM_DEVICES: tuple[Device, ...] = (DGX_SPARK, TWO_SPARKS, DGX_STATION_HBM, DGX_STATION)
