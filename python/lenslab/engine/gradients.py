"""``with loss.backward():`` — read and edit gradients while the backward pass runs.

Inside the block, ``h.grad`` is the gradient flowing into ``h`` at that moment of the backward
pass (not an accumulated ``.grad``), and editing it (in place, or ``h.grad = g``) changes what
flows on to everything upstream. Same design as the forward: the block's body runs inline, the
backward runs on a greenlet and waits inside a tensor hook while the body works on that
gradient.

``loss.backward()`` only becomes a context manager where it is written as a with-item; everywhere
else it is torch's own method. Inside a trace and (nnsight's standalone form) after one, on
tensors a trace saved: ``with logits.sum().backward(): g = h.grad.save()``.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

import torch
from greenlet import getcurrent, greenlet

from ..errors import InputError, ModuleNotCalledError, OutOfOrderError
from . import saving, source
from .stacks import spawn

_torch_backward = torch.Tensor.backward
_tensor_grad = torch._C.TensorBase.grad  # the real descriptor, shadowed during a block
_blocks: dict[greenlet, list[BackwardBlock]] = {}


def backward(self: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> Any:
    """``torch.Tensor.backward`` while a trace is open (see the module docstring)."""
    if gradient is None and self.numel() != 1:
        raise InputError(
            f"backward() on a tensor of shape {list(self.shape)} needs a scalar: reduce it first "
            "(e.g. logits[0, -1, token_id] or loss.sum()), or pass gradient=... of that shape."
        )
    caller = sys._getframe(1)
    block = source.block_at(caller)
    if block is not None and "backward" in block.header_calls:
        return BackwardBlock(self, gradient, args, kwargs, block.grad_names, caller)
    return _torch_backward(self, gradient, *args, **kwargs)


def outside_trace(self: torch.Tensor, gradient: Any = None, *args: Any, **kwargs: Any) -> Any:
    """``torch.Tensor.backward`` when no trace is open, once lenslab has traced in this process.

    Torch's own method, unless written as a with-item: then a standalone backward block, with
    ``.grad`` read and edited as inside a trace and ``.save()`` on values while it runs.
    """
    caller = sys._getframe(1)
    block = source.block_at(caller)
    if block is None or "backward" not in block.header_calls:
        return _torch_backward(self, gradient, *args, **kwargs)
    if gradient is None and self.numel() != 1:
        raise InputError(
            f"backward() on a tensor of shape {list(self.shape)} needs a scalar: reduce it first "
            "(e.g. logits[0, -1, token_id] or loss.sum()), or pass gradient=... of that shape."
        )
    if not self.requires_grad:
        raise InputError(
            "with loss.backward(): this tensor has no gradient graph (it does not require "
            "grad). Outside a trace, build the loss from values a trace saved while grad mode "
            "was on (not under torch.no_grad() or torch.inference_mode())."
        )
    return BackwardBlock(self, gradient, args, kwargs, block.grad_names, caller, standalone=True)


class _Grad:
    """``Tensor.grad`` during a backward block: the live gradient for tensors asked about."""

    def __get__(self, tensor: torch.Tensor | None, owner: type | None = None) -> Any:
        if tensor is None:
            return self
        block = _block_for(tensor)
        if block is None:
            return _tensor_grad.__get__(tensor)
        return block.read(tensor)

    def __set__(self, tensor: torch.Tensor, value: Any) -> None:
        block = _block_for(tensor)
        if block is None:
            _tensor_grad.__set__(tensor, value)
        else:
            block.write(tensor, value)

    def __delete__(self, tensor: torch.Tensor) -> None:
        _tensor_grad.__delete__(tensor)


def _block_for(tensor: torch.Tensor) -> BackwardBlock | None:
    stack = _blocks.get(getcurrent())
    if stack and tensor.requires_grad and not tensor.is_leaf:
        return stack[-1]
    return None


class _Abort(BaseException):
    pass


def _tensors_in(value: Any, depth: int = 3) -> list[torch.Tensor]:
    """``value`` if a tensor, or the tensors in it if a list, tuple or dict (a few levels)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if depth == 0 or not isinstance(value, (list, tuple, dict)):
        return []
    items = value.values() if isinstance(value, dict) else value
    return [t for item in items for t in _tensors_in(item, depth - 1)]


class BackwardBlock:
    """The with-block of ``loss.backward()``; the backward runs as its body asks."""

    def __init__(
        self,
        loss: torch.Tensor,
        gradient: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        grad_names: frozenset[str],
        frame: Any,
        *,
        standalone: bool = False,
    ) -> None:
        self._run = lambda: _torch_backward(loss, gradient, *args, **kwargs)
        self._standalone = standalone  # outside any trace: values need .save() while it runs
        self._saved: list[Any] | None = None
        self._greenlet = spawn(self._main)
        self._hooks: dict[int, Any] = {}
        self._seen: dict[int, torch.Tensor] = {}  # gradients that already flowed, by tensor id
        self._waiting: int | None = None
        self._current: list[Any] | None = None  # [tensor id, gradient] handed to the body
        self._finished = False
        self._body = getcurrent()
        names = {**frame.f_globals, **frame.f_locals}
        for name in grad_names:  # watch every tensor the block reads .grad of: any order works
            for value in _tensors_in(names.get(name)):
                if value.requires_grad and not value.is_leaf:
                    self._watch(value)

    def __enter__(self) -> BackwardBlock:
        if self._standalone:
            self._saved = open_trace()
        _blocks.setdefault(self._body, []).append(self)
        if not hasattr(torch.Tensor, "grad") or not isinstance(
            torch.Tensor.__dict__.get("grad"), _Grad
        ):
            torch.Tensor.grad = _Grad()  # type: ignore[assignment,misc]
        return self

    def __exit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        try:
            if error_type is None:
                self._current = None
                if not self._finished:
                    self._greenlet.switch()
            elif self._greenlet and not self._greenlet.dead:
                self._greenlet.throw(_Abort())
        finally:
            for handle in self._hooks.values():
                handle.remove()
            stack = _blocks[self._body]
            stack.remove(self)
            if not stack:
                del _blocks[self._body]
            if not _blocks and isinstance(torch.Tensor.__dict__.get("grad"), _Grad):
                del torch.Tensor.grad
            if self._saved is not None:
                close_trace(self._saved)
                self._saved = None
        return False

    def _main(self) -> None:
        try:
            self._run()
        except _Abort:
            pass
        finally:
            self._finished = True

    def _watch(self, tensor: torch.Tensor) -> None:
        key = id(tensor)
        if key not in self._hooks:
            self._hooks[key] = tensor.register_hook(lambda grad, key=key: self._on_grad(key, grad))

    def _on_grad(self, key: int, grad: torch.Tensor) -> torch.Tensor:
        self._seen[key] = grad
        if self._waiting != key:
            return grad
        current = [key, grad]
        self._current, self._waiting = current, None
        self._body.switch()
        self._seen[key] = current[1]
        return current[1]

    def read(self, tensor: torch.Tensor) -> torch.Tensor:
        key = id(tensor)
        current = self._current
        if current is not None and current[0] == key:
            return current[1]
        if key in self._seen:
            return self._seen[key]
        if self._finished:
            raise ModuleNotCalledError(
                "this tensor received no gradient from the loss (it does not feed into it, or "
                "its gradient flowed before the block asked for another one's)."
            )
        self._watch(tensor)
        self._waiting, self._current = key, None
        self._greenlet.switch()
        current = self._current
        if current is None or current[0] != key:
            raise ModuleNotCalledError(
                "this tensor received no gradient from the loss, or its gradient flowed before "
                "this line asked for it. lenslab watches from the start the tensors the block "
                "names (h.grad, hs[0].grad, t.grad in a loop over hs), so those read in any "
                "order; read others from the loss backwards (later layers first)."
            )
        return current[1]

    def write(self, tensor: torch.Tensor, value: torch.Tensor) -> None:
        key = id(tensor)
        current = self._current
        if current is None or current[0] != key:
            if key in self._seen:
                raise OutOfOrderError(
                    "cannot set this .grad: its gradient already flowed on upstream. Gradients "
                    "flow from the loss backwards: edit later layers' gradients first."
                )
            self.read(tensor)
            current = self._current
            assert current is not None
        old = current[1]
        if value.shape != old.shape:
            raise InputError(
                f"cannot set .grad to shape {list(value.shape)}: the gradient has shape "
                f"{list(old.shape)}."
            )
        current[1] = value


# -- what a trace gives traced values while it is open -----------------------------------------
# Here rather than in saving.py: the ``with loss.backward():`` installed below is this module's,
# and a standalone backward block opens a trace itself, so imports point one way (this module
# uses saving.py's ``.save()`` and counters).

_installed: set[type] = set()


def _install() -> None:
    if not _installed:
        torch.Tensor.backward = saving._WhileTracing(  # type: ignore[method-assign, assignment]
            "backward", backward, outside_trace, _torch_backward
        )
        torch.Tensor.save = saving._SAVE  # type: ignore[attr-defined]
        _installed.add(torch.Tensor)
    hf_generic = sys.modules.get("transformers.utils.generic")
    if hf_generic is not None and hf_generic.ModelOutput not in _installed:
        hf_generic.ModelOutput.save = saving._SAVE
        _installed.add(hf_generic.ModelOutput)


def open_trace(saved: list[Any] | None = None) -> list[Any]:
    """A trace starts: traced values get what nnsight code expects of them, a ``.save()``
    method and ``with loss.backward():``, while any trace is open.

    ``saved`` (a new list if not given, returned) collects this trace's saved values; pass it
    to ``close_trace``, which may be called even when this was cut short by an interrupt.
    (Plain functions, not a context manager: this runs on every trace.)
    """
    if len(_installed) < 2:  # until transformers' ModelOutput has it too
        _install()
    saved = [] if saved is None else saved
    try:
        saving._local.saved.append(saved)
    except AttributeError:
        saving._local.saved = [saved]
    saving._open_traces[id(saved)] = saved
    return saved


def close_trace(saved: list[Any]) -> None:
    """The trace that ``open_trace`` got ``saved`` from has ended (safe to call twice)."""
    saving._open_traces.pop(id(saved), None)
    stack: list[list[Any]] = getattr(saving._local, "saved", [])
    if stack and stack[-1] is saved:
        stack.pop()
    elif any(other is saved for other in stack):  # a generator may end one out of order
        stack[:] = [other for other in stack if other is not saved]
