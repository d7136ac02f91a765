"""Sphinx configuration of the online book (built by book/build.py from a staged copy of chapters/)."""
import os

project = "Deep generative models, executable"
author = "the companion's authors"
html_title = "Deep generative models, executable: Chapters 14–15"

extensions = ["myst_nb"]
# The committed outputs are the ones shown: nothing is executed at build time.
nb_execution_mode = "off"
# No widget JavaScript (it would come from a CDN and drive no kernel): build.py replaces every widget
# output by the figure it showed at its starting values.
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
# The lessons write display equations inside paragraphs ("... it:\n$$ ... $$\nso ..."), as Jupyter allows.
myst_dmath_double_inline = True
myst_heading_anchors = 3
exclude_patterns = ["_build", "**.ipynb_checkpoints"]

# MathJax 3 from its CDN by default; COMPANION_BOOK_MATHJAX names another copy of tex-mml-chtml.js
# (e.g. one served on localhost, to read the site offline).
mathjax_path = os.environ.get("COMPANION_BOOK_MATHJAX") or "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"

html_theme = "sphinx_book_theme"
# No download button: it would offer the staged copy of the notebook (without its Colab cell, widgets
# replaced); the Colab link at the top of each page opens the real one.
html_theme_options = {"show_toc_level": 2, "home_page_in_toc": True, "use_download_button": False}
html_static_path = []
html_copy_source = False
html_show_sourcelink = False
