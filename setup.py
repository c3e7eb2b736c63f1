"""Build hook: the wheel carries the stage notebooks and the params files as package data.

``notebooks/`` and ``params/`` stay at the top of the checkout. While a wheel is built they are copied
into ``monitor_utils/resources/`` of the build folder only (never into the source tree), where
``monitor_utils.assets`` finds them when the package runs outside a checkout. Everything else about
the package is declared in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGED = {"notebooks": "*.ipynb", "params": "*.yaml"}


class BuildPyWithResources(build_py):
    """``build_py`` that also copies notebooks/*.ipynb and params/*.yaml into monitor_utils/resources/."""

    def _resources(self) -> list[tuple[Path, Path]]:
        pairs = []
        for folder, pattern in PACKAGED.items():
            files = sorted((HERE / folder).glob(pattern))
            if not files:
                raise FileNotFoundError(f"{HERE / folder}: no {pattern} to package; the wheel needs the "
                                        f"checkout's {folder}/ (build from the repository or its sdist)")
            target = Path(self.build_lib) / "monitor_utils" / "resources" / folder
            pairs += [(f, target / f.name) for f in files]
        return pairs

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's notebooks/ and params/ in place
        for src, dst in self._resources():
            self.mkpath(str(dst.parent))
            self.copy_file(str(src), str(dst))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        if getattr(self, "editable_mode", False):
            return outputs
        return outputs + [str(dst) for _, dst in self._resources()]


setup(cmdclass={"build_py": BuildPyWithResources})
