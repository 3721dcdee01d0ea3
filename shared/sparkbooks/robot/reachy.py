"""Hugging Face's Reachy Mini in MuJoCo: its MJCF and meshes, read from the ``reachy-mini`` wheel, never installed.

The ``reachy-mini`` wheel on PyPI (Apache-2.0) ships the robot's MJCF (``reachy_mini.xml``: body yaw,
a six-leg Stewart platform that carries the head, two antennas — nine position actuators; the legs'
loops closed by five ``connect`` equalities) with its STL meshes. Installing the wheel would pin an old
MuJoCo and onnxruntime, so the wheel is registered as a checksummed source (:mod:`sparkbooks.sources`)
and only its ``mjcf/`` folder is unpacked beside the cached wheel. :func:`load_model` gives the C
MuJoCo model; MuJoCo Warp takes the same model (:mod:`.head_task` steps both).
"""

from __future__ import annotations

import copy
import functools
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from ..exceptions import MissingDependencyError, SourceError
from ..sources import Source, Wheel, fetch, registry

__all__ = ["HEAD_BODY", "MJCF_FOLDER", "SOURCE", "STEWART", "load_model", "model_dir"]

SOURCE = "reachy-mini-wheel"
registry.register(Source(
    name=SOURCE,
    filename="reachy_mini-1.13.0-py3-none-any.whl",
    origin=Wheel("reachy-mini", "1.13.0"),
    sha256="11776b3b1283e0f8b0c9f5c79301f4be33d0b21ce5756e1253d57d4afabdb8a3",
    size=24_287_535,
    description="Pollen Robotics / Hugging Face Reachy Mini SDK 1.13.0; only its MJCF and meshes are read",
    license="Apache-2.0",
))

#: Where the model sits inside the wheel.
MJCF_FOLDER = "reachy_mini/descriptions/reachy_mini/mjcf/"
#: The head's body (the Stewart platform's top plate carries it) and the six actuated legs.
HEAD_BODY = "xl_330"
STEWART = tuple(f"stewart_{i}" for i in range(1, 7))


def model_dir(wheel: Path | None = None) -> Path:
    """The unpacked ``mjcf/`` folder (``reachy_mini.xml``, ``scene.xml``, ``assets/*.stl``) of the verified wheel.

    Unpacked once beside the cached wheel (a temporary folder renamed into place, so an interrupted
    unpacking leaves nothing half-written); ``wheel`` overrides the registered source (a test's wheel).
    """
    wheel = Path(wheel) if wheel is not None else fetch(SOURCE)
    target = wheel.parent / "mjcf"
    if (target / "reachy_mini.xml").is_file():
        return target
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.startswith(MJCF_FOLDER) and not n.endswith("/")]
        if MJCF_FOLDER + "reachy_mini.xml" not in members:
            raise SourceError(f"{wheel.name} has no {MJCF_FOLDER}reachy_mini.xml: not a reachy-mini wheel with its "
                              "MuJoCo model (the registered source is reachy-mini 1.13.0).")
        work = Path(tempfile.mkdtemp(dir=wheel.parent, prefix=".mjcf."))
        try:
            for name in members:
                path = work / name[len(MJCF_FOLDER):]
                path.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(name) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            try:
                os.replace(work, target)
            except OSError:  # another process unpacked it first
                if not (target / "reachy_mini.xml").is_file():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def load_model(*, contacts: bool = True, scene: bool = False, wheel: Path | None = None):
    """Reachy Mini as C MuJoCo's ``MjModel`` (2 ms step, as shipped).

    ``contacts=False`` switches collision off (``mjDSBL_CONTACT``): the batch trains without the
    head–body mesh contacts that cost most of a CPU step; the C judge keeps them. ``scene=True`` adds
    the wheel's floor, lights and sky (for video).
    """
    try:
        import mujoco  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("MuJoCo is not installed: `pip install -e '.[robot]'`.") from None
    model = copy.deepcopy(_compiled(model_dir(wheel) / ("scene.xml" if scene else "reachy_mini.xml")))
    if not contacts:
        model.opt.disableflags |= int(mujoco.mjtDisableBit.mjDSBL_CONTACT)
    return model


@functools.lru_cache(maxsize=4)
def _compiled(path: Path):
    """The compiled model of ``path``, once per process (parsing 49 meshes takes a second; a copy takes 0.1 s)."""
    import mujoco  # noqa: PLC0415

    return mujoco.MjModel.from_xml_path(str(path))
