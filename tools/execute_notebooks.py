"""Execute notebooks in place (quick mode) so the committed .ipynb carry fresh outputs.

Usage: python tools/execute_notebooks.py chapters/*.ipynb solutions/*.ipynb
Prints the wall-clock seconds of each notebook (the numbers in README's budget table).
Runs the kernels with COMPANION_RECORD=1, so notebooks write their held-out results to
results/heldout_bits_per_dim.json (then: python tools/readme_table.py rewrites README's table).
"""
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(paths):
    os.environ.setdefault("COMPANION_RECORD", "1")   # kernels inherit it: metrics.record_heldout_result writes
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        seconds = time.perf_counter() - start
        for cell in nb.cells:  # no timestamps: re-running leaves unchanged outputs unchanged in git
            cell.metadata.pop("execution", None)
        nbformat.write(nb, path)
        print(f"{path}: {seconds:.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
