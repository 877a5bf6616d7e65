"""Package layout (the rest of the metadata is in pyproject.toml).

The top-level corpora/ folder (corpus recipes, suites) is installed as lmbench/corpora, so an installed
lmbench finds it beside its code; a source checkout reads corpora/ in place (lmbench.text.fetch.corpora_root).
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["lmbench*"]), "lmbench.corpora"], package_dir={"lmbench.corpora": "corpora"})
