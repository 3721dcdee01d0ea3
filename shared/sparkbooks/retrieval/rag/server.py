"""A Milvus standalone server on this machine, run as a :class:`~sparkbooks.services.Service`.

The ``milvus`` wheel (x86-64 Linux only; Milvus 2.3.5, the C++ Knowhere engine) ships the server
binary and its configuration template; its own launcher (``milvus.MilvusServer``) starts the process
outside the engine's lifecycle. Here the wheel only prepares the files — binary, ``milvus.yaml``
with free loopback ports — and the engine runs the process: log tail on a failed start, stop on
leaving the ``with`` block, at exit, and when the parent dies. On a Spark, where the wheel does not
exist, run Milvus in Docker and give :class:`~sparkbooks.retrieval.rag.index.VectorIndex` its URI.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path

from ...exceptions import MissingDependencyError
from ...services import Service, http_ok

__all__ = ["MilvusServer", "milvus_server"]


def _free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nobody listens on (all held open until all are chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sockets.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sockets[-1].bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _embedded_etcd_yaml(client_port: int, peer_port: int, log_file: Path) -> str:
    """An etcd configuration file (etcd's own keys) for Milvus's in-process etcd on two loopback ports."""
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    return (f"listen-client-urls: {client}\nadvertise-client-urls: {client}\n"
            f"listen-peer-urls: {peer}\ninitial-advertise-peer-urls: {peer}\n"
            f"initial-cluster: default={peer}\nlog-outputs: [{log_file}]\n")


class MilvusServer(Service):
    """``milvus run standalone`` from the ``milvus`` wheel, its data and logs under ``base_dir``.

    Parameters
    ----------
    base_dir
        Folder for the server's binary copy, configuration, data and logs (kept after a stop).
    startup_timeout
        Seconds to wait for ``/healthz`` (a cold start on 2 cores takes ≈ 20 s).
    """

    def __init__(self, base_dir: Path, *, startup_timeout: float = 180.0) -> None:
        super().__init__("milvus", startup_timeout=startup_timeout, cwd=Path(base_dir))
        self.base_dir = Path(base_dir)
        self.port: int | None = None
        self.web_port: int | None = None
        self._binary: Path | None = None

    @property
    def uri(self) -> str:
        """What :class:`~sparkbooks.retrieval.rag.index.VectorIndex` connects to."""
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        try:
            import milvus  # noqa: PLC0415 - the wheel exists for x86-64 Linux only
        except ImportError:
            raise MissingDependencyError(
                "A local Milvus server needs the `milvus` wheel (x86-64 Linux only): `pip install -e '.[rag]'`; "
                "elsewhere run Milvus in Docker and pass its URI to VectorIndex.") from None
        self.base_dir.mkdir(parents=True, exist_ok=True)
        config = milvus.MilvusServerConfig(data_dir=str(self.base_dir))
        keys = [key for key in config.configurable_items if key.endswith("_port")]
        *ports, self.web_port, etcd_client, etcd_peer = _free_ports(len(keys) + 3)  # the wheel's finder leaks sockets
        for key, port in zip(keys, ports):
            config.set(key, port)
        config.resolve_storage()
        missing = sorted(key for key, (_, value) in config.configurable_items.items() if value is None)
        if missing:
            raise MissingDependencyError(f"This milvus wheel's configuration has settings sparkbooks does not fill: "
                                         f"{', '.join(missing)}; install milvus==2.3.5 (the `rag` extra).")
        config.write_config()
        milvus._initialize_data_files(str(self.base_dir))  # the server binary and its libraries, unpacked once
        self._binary = self.base_dir / "bin" / "milvus"
        self.port = int(config.get("proxy_port"))
        # The embedded etcd listens on 2379/2380 unless told otherwise (the wheel's template does not), so a second
        # server on the machine, e.g. a benchmark's beside a test's, aborted in its root coordinator (exit -6):
        # its own ports through Milvus's ETCD_CONFIG_PATH, as milvus's standalone_embed.sh does for Docker.
        etcd_config = self.base_dir / "configs" / "embedEtcd.yaml"
        etcd_config.write_text(_embedded_etcd_yaml(etcd_client, etcd_peer, self.base_dir / "logs" / "etcd.log"))
        self.env = {"DEPLOY_MODE": "STANDALONE", "METRICS_PORT": str(self.web_port),  # /healthz is served there
                    "ETCD_CONFIG_PATH": str(etcd_config),
                    "MILVUS_RUN_DIR": str(self.base_dir / "run"),
                    "LD_LIBRARY_PATH": os.pathsep.join(p for p in (str(self._binary.parent),
                                                                   os.environ.get("LD_LIBRARY_PATH")) if p)}

    def command(self) -> Sequence[str]:
        return [str(self._binary), "run", "standalone"]

    def healthy(self) -> bool:
        return http_ok(f"http://127.0.0.1:{self.web_port}/healthz")

    def describe(self) -> str:
        return f"on 127.0.0.1:{self.port}" if self.port else ""


def milvus_server(base_dir: Path, *, startup_timeout: float = 180.0) -> MilvusServer:
    """Start a Milvus standalone server from the ``milvus`` wheel; use it as a ``with`` block.

    Parameters
    ----------
    base_dir
        Folder for its data and logs.
    startup_timeout
        Seconds to wait for it to become healthy.

    Returns
    -------
    MilvusServer
        Running and healthy; ``server.uri`` is what ``VectorIndex`` connects to.

    Raises
    ------
    MissingDependencyError
        The ``milvus`` wheel is not installed (it exists for x86-64 Linux only).
    ServiceStartError
        The server exited or did not become healthy in time (the message carries its log's last lines).

    Examples
    --------
    >>> with milvus_server(tmp / "milvus") as server:  # doctest: +SKIP
    ...     index = VectorIndex(server.uri, dim=384, model="all-MiniLM-L6-v2")
    """
    return MilvusServer(base_dir, startup_timeout=startup_timeout).start()
