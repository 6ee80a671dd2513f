"""Every teaching notebook in notebooks/ runs top to bottom without an error.

Each runs in a fresh kernel of this Python environment, in a temporary folder (its run directories
and WAV files go there), by notebooks/run.py's own ``execute``. The committed notebooks and their
outputs are left as they are; the executed copy is saved in the test's temporary folder to look at.
`python notebooks/run.py` is what regenerates the committed outputs.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
_spec = importlib.util.spec_from_file_location("notebook_runner", NOTEBOOKS / "run.py")
runner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runner)

NEEDS_ESPEAK = {"05_audio_cvae"}  # synthesizes the spoken digits on first use


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda path: path.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    if path.stem in NEEDS_ESPEAK and shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    nb = runner.execute(path, cwd=tmp_path)  # a failing cell raises CellExecutionError with its traceback
    runner.save(nb, tmp_path / path.name)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code)  # every cell ran
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]
