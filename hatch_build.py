"""Compiles lenslab's one C file into the wheel (and in place, for editable installs).

``python/lenslab/engine/_stackfloor.c`` is the bottom frame of the engine's greenlets; its
header and ``engine/stacks.py`` say why. setuptools' ``build_ext`` does the compiling, so the
platform's own compiler and flags are used (gcc or clang; MSVC on Windows).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

EXTENSION = "lenslab.engine._stackfloor"
SOURCE = "python/lenslab/engine/_stackfloor.c"


class StackFloorBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        from setuptools import Distribution, Extension
        from setuptools.command.build_ext import build_ext

        root = Path(self.root)
        distribution = Distribution(
            {
                "name": "lenslab",
                "ext_modules": [Extension(EXTENSION, [SOURCE])],
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
        built = Path(command.get_ext_fullpath(EXTENSION))
        if not built.is_absolute():
            built = root / built
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":
            build_data["force_include"][str(built)] = f"lenslab/engine/{built.name}"
