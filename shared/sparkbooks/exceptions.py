"""The one exception tree of sparkbooks.

::

    SparkbooksError
     ├── ParameterError (also ValueError)      bad or unknown playbook parameter or setting
     ├── PlaybookNotFoundError (also LookupError)
     ├── MetadataError                          a notebook breaks the playbook contract
     ├── SessionError                           no playbook session, or it cannot tell which playbook runs
     ├── RunLockedError                         another run of the same playbook writes to the same place
     ├── InputError (also ValueError)           data handed to a function cannot be used (shape, NaN, file content, name)
     │    ├── ImageInputError                   a file is not a readable image
     │    ├── DocumentUnreadableError           a document yields no text (encrypted, corrupt, empty, not UTF-8…)
     │    ├── IndexMismatchError                a vector index was built for other vectors (dimension, model)
     │    ├── CheckpointMismatchError           a checkpoint was saved for another task (observation / action shapes)
     │    └── UnsafeQueryError                  a graph query refused before it ran: not one read-only statement
     ├── SolverError                            an optimisation stopped without a certified answer
     │    └── InfeasibleError                   … because no point satisfies the constraints
     ├── SourceError                            a data set or model file cannot be fetched
     │    └── ChecksumMismatchError             ... or its sha256 is not the registered one
     ├── NotebookExecutionError                 a cell failed while running a playbook
     ├── TrainingDivergedError                  training produced NaN or inf (names the step and the last good checkpoint)
     ├── AcceleratorUnavailableError            a GPU was required but no GPU operation worked
     ├── MissingDependencyError (ImportError)   an optional extra is not installed
     ├── DatabaseUnreachableError (ConnectionError) a database server does not answer at its URI
     ├── ServiceError                           a local service (server, process group) failed its lifecycle
     │    ├── ServiceStartError                 it exited, or never became healthy, while starting
     │    └── ServiceExitError                  a process group (e.g. a torchrun job) ended with an error
     │         ├── RendezvousError              torchrun's ranks did not meet at the rendezvous endpoint in time
     │         └── RankFailedError              a torchrun rank died; the others were stopped
     └── ServerError                            an OpenAI-compatible LLM server misbehaved
          ├── ServerUnreachableError            nothing answers at the base URL
          ├── ModelNotServedError (LookupError) the server does not serve that model
          ├── ContextLengthError                the prompt does not fit the context window
          ├── VisionUnsupportedError            the served model takes no image input
          ├── RequestTimeoutError (TimeoutError) no answer within the request's time limit
          └── ServerDiedError                   the server went away mid-response

Every message says what to do next. ``tests/test_exceptions.py`` checks the tree, pickling, and
(by reading the package's source) that no deliberate error is a bare built-in exception.
"""

from __future__ import annotations

__all__ = [
    "AcceleratorUnavailableError",
    "CheckpointMismatchError",
    "ChecksumMismatchError",
    "ContextLengthError",
    "DatabaseUnreachableError",
    "DocumentUnreadableError",
    "ImageInputError",
    "IndexMismatchError",
    "InfeasibleError",
    "InputError",
    "MetadataError",
    "MissingDependencyError",
    "ModelNotServedError",
    "NotebookExecutionError",
    "ParameterError",
    "PlaybookNotFoundError",
    "RankFailedError",
    "RendezvousError",
    "RequestTimeoutError",
    "RunLockedError",
    "ServerDiedError",
    "ServerError",
    "ServerUnreachableError",
    "ServiceError",
    "ServiceExitError",
    "ServiceStartError",
    "SessionError",
    "SolverError",
    "SourceError",
    "SparkbooksError",
    "TrainingDivergedError",
    "UnsafeQueryError",
    "VisionUnsupportedError",
    "require",
]


class SparkbooksError(Exception):
    """Root of every error sparkbooks raises on purpose."""


class ParameterError(SparkbooksError, ValueError):
    """A playbook parameter (or a setting) is unknown, ill-typed or out of its declared range."""


class PlaybookNotFoundError(SparkbooksError, LookupError):
    """No playbook has the requested slug."""


class MetadataError(SparkbooksError):
    """A notebook's ``playbook`` metadata or parameters cell breaks the contract."""


class SessionError(SparkbooksError):
    """No playbook session is active, or it cannot tell which playbook is running."""


class RunLockedError(SparkbooksError):
    """Another run of the same playbook is writing to the same output folder."""


class InputError(SparkbooksError, ValueError):
    """Data handed to a function cannot be used: wrong shape, NaN, unknown name, bad file content."""


class ImageInputError(InputError):
    """A file or byte string is not an image that can be read."""


class DocumentUnreadableError(InputError):
    """A document cannot be turned into text; the message is the reason an ingestion report shows."""


class IndexMismatchError(InputError):
    """A vector index holds vectors of another dimension or model than the ones offered."""


class CheckpointMismatchError(InputError):
    """A checkpoint was saved for another task: its observation or action shape differs (the message gives both)."""


class UnsafeQueryError(InputError):
    """Cypher refused before it ran: not a single read-only statement (the message names why)."""


class SolverError(SparkbooksError):
    """An optimisation stopped without an answer it can certify."""


class InfeasibleError(SolverError):
    """No point satisfies the constraints (e.g. a return target above every asset's mean)."""


class SourceError(SparkbooksError):
    """A registered data set or model file could not be fetched."""


class ChecksumMismatchError(SourceError):
    """A fetched file's sha256 differs from the registered one."""

    def __init__(self, name: str, expected: str, actual: str) -> None:
        self.name, self.expected, self.actual = name, expected, actual
        super().__init__(
            f"Checksum mismatch for source {name!r}: expected sha256 {expected}, got {actual}. "
            "The file was not kept; delete the cache entry and fetch again, or check the registry entry."
        )

    def __reduce__(self):  # keep pickling working with the custom __init__
        return (type(self), (self.name, self.expected, self.actual))


class NotebookExecutionError(SparkbooksError):
    """A cell raised while a playbook ran; carries where and what."""

    def __init__(self, slug: str, cell_index: int, ename: str, evalue: str, notebook_path: str = "") -> None:
        self.slug, self.cell_index, self.ename, self.evalue = slug, cell_index, ename, evalue
        self.notebook_path = notebook_path
        where = f" The partial notebook is at {notebook_path}." if notebook_path else ""
        super().__init__(f"Playbook {slug!r} failed in cell {cell_index}: {ename}: {evalue}.{where}")

    def __reduce__(self):
        return (type(self), (self.slug, self.cell_index, self.ename, self.evalue, self.notebook_path))


class TrainingDivergedError(SparkbooksError):
    """Training produced NaN or inf (observations, rewards or weights); the message names the step and the last good checkpoint."""


class AcceleratorUnavailableError(SparkbooksError):
    """A GPU path was requested but no GPU operation succeeded."""


class MissingDependencyError(SparkbooksError, ImportError):
    """A playbook needs an optional extra that is not installed; the message names the extra."""


def require(module: str, *, extra: str) -> None:
    """Raise :class:`MissingDependencyError` unless ``module`` can be imported."""
    from importlib.util import find_spec  # noqa: PLC0415

    if find_spec(module) is None:
        raise MissingDependencyError(f"{module} is not installed: `pip install -e '.[{extra}]'` (or `make install`).")


class ServiceError(SparkbooksError):
    """A local service — a server or a process group — failed its lifecycle."""


class ServiceStartError(ServiceError):
    """The service exited, or did not become healthy in time, while starting (the message holds its log tail)."""


class ServiceExitError(ServiceError):
    """A process group ran to its end but failed (non-zero exit); the message holds its log tail."""


class RendezvousError(ServiceExitError):
    """torchrun's ranks did not meet at the rendezvous endpoint in time (the message names host:port)."""


class RankFailedError(ServiceExitError):
    """A torchrun rank exited with an error; torchrun stopped the others (the message names the rank)."""


class DatabaseUnreachableError(SparkbooksError, ConnectionError):
    """A database server (Milvus, a graph database) does not answer at the given URI in time."""


class ServerError(SparkbooksError):
    """An OpenAI-compatible LLM server failed to do what was asked."""


class ServerUnreachableError(ServerError):
    """Nothing answers at the server's base URL."""


class ModelNotServedError(ServerError, LookupError):
    """The requested model name is not among the served ones."""


class ContextLengthError(ServerError):
    """The prompt (plus the tokens asked for) exceeds the context window."""


class VisionUnsupportedError(ServerError):
    """The endpoint answered, but its model does not accept images."""


class RequestTimeoutError(ServerError, TimeoutError):
    """The server accepted the request but did not answer within the time limit."""


class ServerDiedError(ServerError):
    """The server process exited, or the connection dropped mid-response."""
