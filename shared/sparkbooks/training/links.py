"""Which network link the ranks talk over: the NCCL / gloo / UCX variables for the interface holding an address.

Two DGX Sparks cabled on a QSFP port talk over that port only when every library is told its interface (and
NCCL its RDMA devices); :func:`link_environment` reads them from this machine, :data:`SPARK_LINK_EXAMPLE`
shows what a Spark's second port gives.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["LINK_VARIABLES", "SPARK_LINK_EXAMPLE", "link_environment"]

#: The variables that put NCCL, gloo and UCX on the link between the nodes (NVIDIA's pytorch-fine-tune
#: docker-compose.yml sets the first three; NCCL_IB_HCA names the RDMA devices NCCL may use).
LINK_VARIABLES = ("NCCL_SOCKET_IFNAME", "GLOO_SOCKET_IFNAME", "UCX_NET_DEVICES", "NCCL_IB_HCA")
#: What :func:`link_environment` reads on a DGX Spark cabled on its second QSFP port: the port is two PCIe ×4
#: halves (``rocep1s0f1`` and ``roceP2p1s0f1``), and one cable's full 200 Gb/s needs both named (dgx-spark-playbooks
#: #102, PR #103; that PR's ≈3 → 23.7 GB/s jump came from rebuilding NCCL from its release tag, with these already
#: set: :data:`sparkbooks.training.collectives.KNOWN_FIXES`). An example for the printed command when no link is up here.
SPARK_LINK_EXAMPLE = {"NCCL_SOCKET_IFNAME": "enp1s0f1np1", "GLOO_SOCKET_IFNAME": "enp1s0f1np1",
                      "UCX_NET_DEVICES": "enp1s0f1np1", "NCCL_IB_HCA": "rocep1s0f1,roceP2p1s0f1"}


def _interface_holding(address: str) -> str | None:
    """The network interface of this machine that holds IPv4 ``address`` (Linux ``SIOCGIFADDR``), or ``None``."""
    import fcntl  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import struct  # noqa: PLC0415

    try:
        wanted = socket.inet_aton(socket.gethostbyname(address))
    except OSError:
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))  # SIOCGIFADDR
            except OSError:
                continue  # no IPv4 address on this interface
            if packed[20:24] == wanted:
                return name
    return None


def _pci_address(path: Path) -> str | None:
    try:
        return Path(os.path.realpath(path)).name
    except OSError:
        return None


def link_environment(address: str, *, interface: str | None = None, sys_root: Path | str = "/") -> dict[str, str]:
    """The NCCL / gloo / UCX variables for the link that carries ``address`` on this machine.

    ``NCCL_SOCKET_IFNAME``, ``GLOO_SOCKET_IFNAME`` and ``UCX_NET_DEVICES`` name the interface that holds
    ``address`` (or ``interface``); ``NCCL_IB_HCA`` names every RDMA device on the same PCI
    bus:device.function in any PCI domain — a DGX Spark's QSFP port is two PCIe ×4 halves (``0000:01:00.1`` →
    ``rocep1s0f1`` and ``0002:01:00.1`` → ``roceP2p1s0f1``) and full bandwidth needs both. Empty for a loopback or
    foreign address. Variables already set in this process's environment win (the user's choice).
    """
    import ipaddress  # noqa: PLC0415

    try:
        if ipaddress.ip_address(address).is_loopback:
            return {}
    except ValueError:
        if address == "localhost":
            return {}
    name = interface or _interface_holding(address)
    if not name:
        return {}
    root = Path(sys_root)
    env = {"NCCL_SOCKET_IFNAME": name, "GLOO_SOCKET_IFNAME": name, "UCX_NET_DEVICES": name}
    pci = _pci_address(root / "sys/class/net" / name / "device")
    if pci and ":" in pci:
        slot = pci.split(":", 1)[1]  # bus:device.function, without the PCI domain
        halves = sorted(hca.name for hca in (root / "sys/class/infiniband").glob("*")
                        if (_pci_address(hca / "device") or "").split(":", 1)[-1] == slot)
        if halves:
            env["NCCL_IB_HCA"] = ",".join(halves)
    return {k: os.environ.get(k, v) for k, v in env.items()}
