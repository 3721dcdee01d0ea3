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
]


def test_missing_extra_names_the_install_command():
    with pytest.raises(ex.MissingDependencyError, match=r"pip install -e '\.\[singlecell\]'"):
        ex.require("no_such_module_xyz", extra="singlecell")
    ex.require("json", extra="none")


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_pickle_round_trip_keeps_type_and_message(error):
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error) and str(back) == str(error)


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
