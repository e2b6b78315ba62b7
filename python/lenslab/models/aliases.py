"""``rename=``: other names for module paths, as nnsight has them.

``NNsight(net, rename={"transformer.h": "layers", ".attn": "attention"})``: each key is a
module path (a leading dot is optional), each value one alias or a list of them. A key applies
wherever it resolves below some module, so a one-part key (``"attn"``) renames that child in
every block, and a dotted key mounts a deeper module on the module it starts from
(``"transformer.h"`` -> ``model.layers``). The old names keep working; an aliased envoy is
the same envoy, with its real name and ``.path``.

lenslab's ``LanguageModel`` also takes standardized-view overrides in the same argument
(``{"layers": "gpt_neox.layers"}``): an entry whose key is a standardized name and whose value
is an existing module path is one of those, not an alias (``split_rename``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

from torch import nn

from ..errors import RenameError

Rename = Mapping[str, "str | list[str] | tuple[str, ...]"]


def split_rename(
    module: nn.Module, rename: Rename, standardized: Iterable[str]
) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(standardized-view overrides, aliases) of a ``rename=`` mapping."""
    known = set(standardized)
    overrides: dict[str, str] = {}
    aliases: dict[str, list[str]] = {}
    for key, value in rename.items():
        if key in known and isinstance(value, str) and _resolves_anywhere(module, value):
            overrides[key] = value
        else:
            aliases[key] = _alias_list(key, value)
    return overrides, aliases


def build_aliases(
    module: nn.Module, aliases: Mapping[str, list[str]], taken: Mapping[str, frozenset[str]]
) -> dict[str, dict[str, str]]:
    """Envoy path (``model.transformer``) -> {alias: dotted module path below it}.

    ``taken``: names an envoy at that path already answers to (``"model"``: the wrapper's own
    attributes, ``""``: every envoy's), which an alias may not hide.

    Raises:
        RenameError: a key that matches no module, an alias with a dot, or an alias that would
            hide an existing name.
    """
    table: dict[str, dict[str, str]] = {}
    paths = [path for path, _ in module.named_modules()]
    for key, names in aliases.items():
        target = key.removeprefix(".")
        found = [p for p in paths if _at(module, p, target) is not None]
        if not target or not found:
            raise RenameError(_no_match(module, key))
        for path in found:
            where = f"model.{path}" if path else "model"
            here = table.setdefault(where, {})
            for alias in names:
                _check_free(module, path, where, alias, key, taken)
                here[alias] = target
    return table


def _alias_list(key: str, value: object) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if (
        not isinstance(names, (list, tuple))
        or not names
        or not all(isinstance(n, str) for n in names)
    ):
        raise RenameError(
            f"rename={{{key!r}: {value!r}}}: an alias is a name or a list of names, e.g. "
            f"rename={{{key!r}: 'layers'}}."
        )
    cleaned = [n.removeprefix(".") for n in names]
    for name in cleaned:
        if not name.isidentifier():
            raise RenameError(
                f"rename={{{key!r}: {value!r}}}: the alias {name!r} is not a plain attribute "
                "name (no dots: a dotted key mounts its module on the one it starts from, "
                "e.g. rename={'transformer.h': 'layers'} gives model.layers)."
            )
    return cleaned


def _check_free(
    module: nn.Module,
    path: str,
    where: str,
    alias: str,
    key: str,
    taken: Mapping[str, frozenset[str]],
) -> None:
    owner = _at(module, "", path)
    assert owner is not None
    clash = alias in owner._modules or alias in taken.get("", frozenset())
    clash = clash or (where == "model" and alias in taken.get("model", frozenset()))
    if clash:
        raise RenameError(
            f"rename={{{key!r}: {alias!r}}}: {where} already has a module or attribute named "
            f"{alias!r}, which the alias would hide. Choose another alias."
        )


def _at(module: nn.Module, path: str, target: str) -> nn.Module | None:
    """The module at ``path`` + ``target`` (dotted, torch names), None if there is none."""
    found: nn.Module | None = module
    for part in f"{path}.{target}".split("."):
        if not part:
            continue
        found = found._modules.get(part) if found is not None else None
        if found is None:
            return None
    return found


def _resolves_anywhere(module: nn.Module, target: str) -> bool:
    target = target.removeprefix(".")
    return any(_at(module, path, target) is not None for path, _ in module.named_modules())


def _no_match(module: nn.Module, key: str) -> str:
    names = {p for p, _ in module.named_modules() if p}
    names |= {p.rsplit(".", 1)[-1] for p in names}
    close = difflib.get_close_matches(key.removeprefix("."), sorted(names), n=2)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    top = ", ".join(module._modules)
    return (
        f"rename key {key!r} matches no module of {type(module).__name__} (its top-level "
        f"modules are {top}).{hint} Keys are module paths, e.g. rename={{'transformer.h': "
        "'layers'} or rename={'attn': 'attention'}."
    )
