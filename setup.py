"""The one build step pyproject.toml cannot declare: the suites a user reads and copies live at the top of the
repository, in corpora/suites/; an installed lmbench (wheel or non-editable `pip install`) carries them as
package data in lmbench/suites/, copied here at build time. A source checkout (and an editable install) reads
corpora/suites/ itself, so there is one copy in the repository and nothing to keep in sync."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# Top-level folder → where an installed lmbench finds it (lmbench/bench/suite.py: data_dir).
PACKAGED = {"corpora/suites": "lmbench/suites"}


class BuildWithCorpora(build_py):
    """build_py, then copy each folder of PACKAGED (its *.toml files) into the built package."""

    def run(self) -> None:
        """Build the package, then add the suites."""
        super().run()
        root = Path(__file__).resolve().parent
        for source, target in PACKAGED.items():
            destination = Path(self.build_lib) / target
            destination.mkdir(parents=True, exist_ok=True)
            for path in sorted((root / source).glob("*.toml")):
                shutil.copyfile(path, destination / path.name)


setup(cmdclass={"build_py": BuildWithCorpora})
