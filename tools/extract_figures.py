"""Write every PNG figure of an executed notebook to a folder, to look at them.

Usage: python tools/extract_figures.py chapters/14_1_pearson_crabs.ipynb /tmp/figs
"""
import base64
import sys
from pathlib import Path

import nbformat


def main(nb_path, out_dir):
    nb = nbformat.read(nb_path, as_version=4)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, cell in enumerate(nb.cells):
        for j, output in enumerate(cell.get("outputs", [])):
            data = output.get("data", {})
            if "image/png" in data:
                path = out / f"{Path(nb_path).stem}_cell{i:02d}_{j}.png"
                path.write_bytes(base64.b64decode(data["image/png"]))
                print(path)
                n += 1
    print(f"{n} figure(s)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
