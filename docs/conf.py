"""Sphinx configuration: ``bash project/run docs`` builds the site into var/docs/html with
warnings as errors, then runs the examples (``-b doctest``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import django

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(ROOT), str(DOCS / "_ext")]
# The reference is read from the code: the settings object, the system checks, the commands'
# parsers and the metrics collector, under the tests' small settings (no database is opened).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

from celery_sa import __version__  # noqa: E402

project = "celery_sa"
author = "the celery_sa developers"
copyright = "2026, the celery_sa developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "celery_sa_reference",
]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "README.md"]
nitpicky = False

html_theme = "furo"
html_title = f"celery_sa {release}"
html_static_path: list[str] = []

autodoc_member_order = "bysource"
autodoc_typehints = "description"

# Links to the projects celery_sa builds on; off by default so that a build needs no network.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
