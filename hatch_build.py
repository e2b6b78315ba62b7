"""Compiles lenslab's C files into the wheel (and in place, for editable installs).

``python/lenslab/engine/_stackfloor.c`` is the bottom frame of the engine's greenlets; its
header and ``engine/stacks.py`` say why. ``python/lenslab/engine/_guard.c`` gives with-blocks
a cleanup that no interrupt can skip; its header says why that needs C. setuptools'
``build_ext`` does the compiling, so the platform's own compiler and flags are used (gcc or
clang; MSVC on Windows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

EXTENSIONS = {
    "lenslab.engine._stackfloor": "python/lenslab/engine/_stackfloor.c",
    "lenslab.engine._guard": "python/lenslab/engine/_guard.c",
}


class StackFloorBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        root = Path(self.root)
        distribution = Distribution(
            {
                "name": "lenslab",
                "ext_modules": [Extension(name, [path]) for name, path in EXTENSIONS.items()],
                "package_dir": {"": "python"},
                "script_name": "hatch_build.py",
            }
        )
        distribution.src_root = str(root)
        command = build_ext(distribution)
        command.inplace = True  # next to its source: an editable install imports it from there
        command.build_temp = str(root / "build" / "stackfloor")
        command.ensure_finalized()
        command.run()
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        for name in EXTENSIONS:
            built = Path(command.get_ext_fullpath(name))
            if not built.is_absolute():
                built = root / built
            if version != "editable":
                build_data["force_include"][str(built)] = f"lenslab/engine/{built.name}"
