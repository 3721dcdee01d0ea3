import pickle

import pytest

from sparkbooks import exceptions as ex

SAMPLES = [
    ex.SparkbooksError("root"),
    ex.ParameterError("bad"),
    ex.PlaybookNotFoundError("nope"),
    ex.MetadataError("meta"),
    ex.SourceError("src"),
    ex.ChecksumMismatchError("model", "aa", "bb"),
    ex.NotebookExecutionError("start-here", 4, "RuntimeError", "boom", "/tmp/x.ipynb"),
    ex.AcceleratorUnavailableError("no gpu"),
    ex.MissingDependencyError("scanpy"),
    ex.ServerError("server"),
    ex.ServerUnreachableError("down"),
    ex.ModelNotServedError("nope"),
    ex.ContextLengthError("long"),
    ex.ServerDiedError("dead"),
    ex.VisionUnsupportedError("text only"),
    ex.RequestTimeoutError("slow"),
    ex.ImageInputError("not an image"),
    ex.ParameterError("bad value"),
    ex.SessionError("no session"),
    ex.RunLockedError("locked"),
    ex.InputError("bad data"),
    ex.DocumentUnreadableError("encrypted"),
    ex.IndexMismatchError("384 vs 768"),
    ex.CheckpointMismatchError("obs (17,) vs (11,)"),
    ex.SolverError("stopped"),
    ex.InfeasibleError("no point"),
    ex.TrainingDivergedError("NaN at step 7"),
    ex.DatabaseUnreachableError("bolt://x"),
    ex.ServiceError("service"),
    ex.ServiceStartError("never healthy"),
    ex.ServiceExitError("exit 1"),
    ex.RendezvousError("host:port"),
    ex.RankFailedError("rank 1"),
    ex.UnsafeQueryError("not read-only: DELETE"),
]
ERRORS = sorted(name for name in ex.__all__ if isinstance(getattr(ex, name), type))


def test_missing_extra_names_the_install_command():
    with pytest.raises(ex.MissingDependencyError, match=r"pip install -e '\.\[singlecell\]'"):
        ex.require("no_such_module_xyz", extra="singlecell")
    ex.require("json", extra="none")


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_round_trip_keeps_type_and_message(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)


def test_every_error_has_a_pickle_sample():
    assert sorted({type(e).__name__ for e in SAMPLES}) == ERRORS


@pytest.mark.parametrize("name", ERRORS)
def test_every_error_is_drawn_in_the_tree_and_exported_from_the_package(name):
    import sparkbooks as sb

    assert getattr(sb, name) is getattr(ex, name) and name in sb.__all__
    assert f" {name} " in ex.__doc__ or f" {name}\n" in ex.__doc__, f"{name} is not drawn in exceptions' tree"


def test_no_error_class_is_defined_outside_the_tree():
    """Reading the package's source: every exception class lives in exceptions.py (and so in the drawn tree)."""
    import ast
    from pathlib import Path

    import sparkbooks as sb

    outside = []
    for path in Path(sb.__file__).parent.rglob("*.py"):
        if path.name == "exceptions.py" and path.parent == Path(sb.__file__).parent:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    (b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")) in ERRORS or
                    (b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")).endswith(("Error", "Exception"))
                    for b in node.bases):
                outside.append(f"{path.name}:{node.lineno} {node.name}")
    assert outside == []


def test_an_unsafe_query_is_bad_input():
    assert issubclass(ex.UnsafeQueryError, ex.InputError) and issubclass(ex.UnsafeQueryError, ValueError)


def test_tree_matches_the_docstring():
    assert issubclass(ex.ParameterError, ValueError)
    assert issubclass(ex.ChecksumMismatchError, ex.SourceError)
    assert issubclass(ex.ImageInputError, ValueError) and issubclass(ex.RequestTimeoutError, TimeoutError)
    for name in ex.__all__:
        if isinstance(getattr(ex, name), type):
            assert issubclass(getattr(ex, name), ex.SparkbooksError)


def test_execution_error_points_at_cell_and_partial_notebook():
    err = ex.NotebookExecutionError("start-here", 4, "RuntimeError", "boom", "/tmp/x.ipynb")
    assert (err.cell_index, err.ename, err.evalue) == (4, "RuntimeError", "boom")
    assert "cell 4" in str(err) and "/tmp/x.ipynb" in str(err)
