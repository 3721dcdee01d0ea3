"""``sparkbooks`` command line: parse, call one library function, report.

Exit codes: 0 success · 1 a playbook run failed (or a required GPU is missing) ·
2 bad input (unknown playbook, unknown or ill-typed parameter, a bad ``SPARKBOOKS_*`` setting), nothing written ·
130 stopped by SIGINT (Ctrl-C) · 143 stopped by SIGTERM (``timeout``, systemd, a closing terminal). A stopped run
publishes nothing, keeps the last good run, and leaves nothing in the playbook's folder.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from . import catalog
from .exceptions import (
    AcceleratorUnavailableError,
    MetadataError,
    NotebookExecutionError,
    ParameterError,
    PlaybookNotFoundError,
    SparkbooksError,
)
from .settings import settings

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM  # what a shell reports: 130, 143


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it stops as on Ctrl-C: cleaning up on its way out."""


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`_Terminated` (the default action kills without clean-up)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough: let the clean-up finish
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _cmd_list(args: argparse.Namespace) -> int:
    rows = [
        (pb.slug, pb.title, f"{pb.minutes.get('cpu', '?')} min", pb.hardware["gpu"], ", ".join(pb.tags))
        for pb in catalog.discover()
    ]
    print(_table(rows, ("slug", "title", "cpu time", "GPU", "tags")))
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    pb = catalog.get(args.slug)
    print(f"{pb.title} ({pb.slug})\n{pb.summary}\n")
    rows = [(p.name, p.annotation, repr(p.default), p.describe(), p.help) for p in pb.parameters.values()]
    print(_table(rows, ("parameter", "type", "default", "accepts", "meaning")))
    print("\nprofiles:")
    for name, values in pb.profiles.items():
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "(the defaults above)"
        print(f"  {name:8} {shown}")
    for s in pb.stand_ins:
        print(f"stand-in: {s}")
    return EXIT_OK


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import report  # noqa: PLC0415

    rep = report()
    print(json.dumps(rep, indent=2, default=str) if args.json else rep["text"])
    return EXIT_OK


def _run_one(slug: str, args: argparse.Namespace, pairs: list[tuple[str, str]]) -> int:
    from .runner import parse_overrides, run  # noqa: PLC0415

    pb = catalog.get(slug)
    params = parse_overrides(pb, pairs)
    result = run(slug, profile=args.profile, params=params, out=args.out, cell_timeout=args.timeout,
                 progress=not args.no_progress)
    print(f"ok: {result.notebook}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    pairs = [tuple(p) for p in (args.param or [])]
    if bool(args.slug) == bool(args.all):
        raise ParameterError("Name one playbook (`sparkbooks run SLUG`) or pass --all; see `sparkbooks list`.")
    if args.slug:
        return _run_one(args.slug, args, pairs)
    if pairs:
        raise ParameterError("-p applies to one playbook; drop it with --all or name the playbook.")
    return _run_many([pb.slug for pb in catalog.discover()], args)


def _run_many(slugs: list[str], args: argparse.Namespace, *,
              after_each: Callable[[str], object] | None = None) -> int:
    failed = []
    for slug in slugs:
        try:
            _run_one(slug, args, [])
        except NotebookExecutionError as exc:
            print(f"NotebookExecutionError: {exc}", file=sys.stderr)
            failed.append(slug)
        if after_each is not None:
            after_each(slug)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _cmd_render(args: argparse.Namespace) -> int:
    from .render import render_site  # noqa: PLC0415

    for slug in args.slugs:
        catalog.get(slug)
    index = render_site(args.slugs or None, runs=args.out, site=args.site)
    print(f"site: {index.resolve()}")
    return EXIT_OK


def _cmd_build(args: argparse.Namespace) -> int:
    from .render import render_index, render_site  # noqa: PLC0415

    args.profile = "auto"
    slugs = [pb.slug for pb in catalog.discover()]
    index = render_index(runs=args.out, site=args.site).resolve()
    print(f"site: {index}  (open it in a browser now: file://{index}; each guide appears as its playbook finishes)",
          flush=True)
    status = _run_many(slugs, args, after_each=lambda slug: render_site([slug], runs=args.out, site=args.site))
    print(f"site: {index}  (open it in a browser: file://{index})")
    return status


#: Tools `sparkbooks setup` builds, by name: the domain module that knows how (imported only when asked).
SETUP_TOOLS = {"llama-server": "sparkbooks.llm.llamacpp"}


def _cmd_setup(args: argparse.Namespace) -> int:
    import importlib  # noqa: PLC0415

    tool = importlib.import_module(SETUP_TOOLS[args.tool])
    found = None if args.force else tool.find_server()
    path = found or tool.build_server(force=args.force)
    print(f"{args.tool}: {path}" + (" (already present, not rebuilt)" if found else ""))
    return EXIT_OK


def _cmd_clean(args: argparse.Namespace) -> int:
    from .notebook import clean  # noqa: PLC0415

    for slug in args.slugs or [pb.slug for pb in catalog.discover()]:
        pb = catalog.get(slug)
        executed = Path(args.out or settings.runs_dir) / slug / f"{slug}.ipynb" if args.from_run else None
        if executed is not None and not executed.exists():
            raise ParameterError(f"No run at {executed}: `sparkbooks run {slug} --profile cpu` first.")
        clean(pb.path, executed=executed)
        print(f"cleaned {pb.path}" + (f" (reference outputs from {executed})" if executed else ""))
    return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sparkbooks", description="Run and render sparkbooks playbooks.",
                                     epilog="Exit codes: 0 ok, 1 a run failed, 2 bad input, 130 stopped by SIGINT, "
                                            "143 stopped by SIGTERM.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="table of playbooks").set_defaults(func=_cmd_list)
    show = sub.add_parser("show", help="a playbook's parameters and profiles")
    show.add_argument("slug")
    show.set_defaults(func=_cmd_show)
    doctor = sub.add_parser("doctor", help="hardware and software report: what would run on the GPU")
    doctor.add_argument("--json", action="store_true", help="machine-readable report")
    doctor.set_defaults(func=_cmd_doctor)

    def outputs(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", type=Path, default=None, help="runs folder (default: runs/)")

    def execution(p: argparse.ArgumentParser) -> None:
        outputs(p)
        p.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell (default 1800)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    run = sub.add_parser("run", help="execute a playbook with papermill into runs/<slug>/")
    run.add_argument("slug", nargs="?", help="playbook to run (see `sparkbooks list`)")
    run.add_argument("--all", action="store_true", help="run every playbook")
    run.add_argument("--profile", default="auto", help="auto (from the hardware), cpu, spark, station…")
    run.add_argument("-p", "--param", nargs=2, action="append", metavar=("NAME", "VALUE"),
                     help="override one parameter (repeatable); see `sparkbooks show SLUG`")
    execution(run)
    run.set_defaults(func=_cmd_run)

    render = sub.add_parser("render", help="render executed playbooks into the static guide site")
    render.add_argument("slugs", nargs="*", metavar="SLUG")
    outputs(render)
    render.add_argument("--site", type=Path, default=None, help="site folder (default: site/)")
    render.set_defaults(func=_cmd_render)

    setup = sub.add_parser("setup", help="build tools the playbooks need (llama-server), once")
    setup.add_argument("tool", choices=sorted(SETUP_TOOLS))
    setup.add_argument("--force", action="store_true", help="rebuild even when present")
    setup.set_defaults(func=_cmd_setup)

    clean = sub.add_parser("clean", help="strip notebooks for commit, keeping nbval-check-output cells")
    clean.add_argument("slugs", nargs="*", metavar="SLUG")
    clean.add_argument("--from-run", action="store_true",
                       help="take the tagged cells' reference outputs from runs/<slug>/ (run with --profile cpu)")
    outputs(clean)
    clean.set_defaults(func=_cmd_clean)

    build = sub.add_parser("build", help="run every playbook with its auto profile, then render the site")
    execution(build)
    build.add_argument("--site", type=Path, default=None, help="site folder (default: site/)")
    build.set_defaults(func=_cmd_build)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sparkbooks`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        settings.validate()  # a bad SPARKBOOKS_* variable is bad input: exit 2 with the accepted values
        with _sigterm_interrupts():
            return args.func(args)
    except (ParameterError, PlaybookNotFoundError, MetadataError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except (NotebookExecutionError, AcceleratorUnavailableError, SparkbooksError) as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except _Terminated:
        print("stopped by SIGTERM", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("stopped by SIGINT (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
