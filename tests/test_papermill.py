"""A notebook run by papermill on a non-default runs directory (one cell of a sweep, say) reads it and leaves it
byte-identical: nothing written, deleted or trained there."""
import hashlib
from pathlib import Path

import pytest

from ltlab.config import load_config
from ltlab.experiments.compare import compare

ROOT = Path(__file__).resolve().parents[1]
TINY = ["epochs=2", "batch_size=16", "data.num_classes=6", "data.n_max=30", "data.imbalance_ratio=10",
        "data.val_per_class=3", "data.test_per_class=4", "data.many=20", "data.few=6", "model.prompt_length=2"]


def digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def foreign_runs(tmp_path_factory):
    """Finished runs made elsewhere (as one cell of a sweep would hold), two methods, two seeds."""
    runs = tmp_path_factory.mktemp("papermill") / "sweep-cell"
    compare(load_config("synthetic", TINY), ["sgd", "gnm"], seeds=2, out=runs, progress=False)
    return runs


def run_notebook(name: str, runs: Path, out: Path) -> str:
    papermill = pytest.importorskip("papermill")
    papermill.execute_notebook(str(ROOT / "notebooks" / name), str(out), cwd=str(ROOT / "notebooks"),
                               parameters={"RUNS": str(runs), "SMOKE": True}, kernel_name="python3",
                               progress_bar=False)
    return out.read_text()


@pytest.mark.notebook
def test_papermill_runs_the_training_notebook_on_another_runs_directory_without_changing_it(foreign_runs, tmp_path):
    before = digest(foreign_runs)
    text = run_notebook("01_train.ipynb", foreign_runs, tmp_path / "01.ipynb")
    assert digest(foreign_runs) == before  # nothing written, deleted or trained there
    assert "| gnm |" in text and "| rsam |" not in text  # the methods it found, not the parameters' list
    assert "6 classes" in text or "'classes': 6" in text  # the task of the runs, not the preset's


@pytest.mark.notebook
@pytest.mark.full
@pytest.mark.parametrize("name, found, absent", [("02_flatness.ipynb", ["gnm", "λ_max"], []),
                                                 ("03_head_tail.ipynb", ["| gnm |"], ["| rsam |"])])
def test_papermill_runs_a_reading_notebook_on_another_runs_directory_without_changing_it(foreign_runs, tmp_path, name,
                                                                                         found, absent):
    before = digest(foreign_runs)
    text = run_notebook(name, foreign_runs, tmp_path / name)
    assert digest(foreign_runs) == before  # nothing written, deleted or trained there
    assert all(w in text for w in found) and not any(w in text for w in absent)


@pytest.mark.parametrize("name", ["01_train.ipynb", "02_flatness.ipynb", "03_head_tail.ipynb", "04_paper_figures.ipynb"])
def test_no_cell_overrides_a_parameter(name):
    """papermill injects values after the parameters cell; a later cell may derive from a parameter (X = X or
    default) but never set it afresh, or `papermill -p X ...` would do nothing."""
    import ast
    import json

    cells = [c for c in json.loads((ROOT / "notebooks" / name).read_text())["cells"] if c["cell_type"] == "code"]
    first = next(i for i, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    params = {t.id for node in ast.parse("".join(cells[first]["source"])).body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name)}
    assert params, f"{name}: no parameters"
    for c in cells[first + 1:]:
        src = "".join(line for line in c["source"] if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Assign):
                names = {t.id for tgt in node.targets for t in ast.walk(tgt) if isinstance(t, ast.Name)}
                used = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                for p in (names & params) - used:
                    raise AssertionError(f"{name}: a cell after the parameters sets {p} without reading it")
