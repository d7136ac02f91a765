"""Execute notebooks in place (quick mode) so the committed .ipynb carry fresh outputs.

Usage: python tools/execute_notebooks.py chapters/*.ipynb solutions/*.ipynb
Prints the wall-clock seconds of each notebook (the numbers in README's budget table).
"""
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(paths):
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
