"""Every error lenslab raises on purpose, so users can catch them as one family.

    LensError
    ├── ModulePathError      (also AttributeError / IndexError) no such module under that path
    ├── TraceStateError      a with-block or value used where the trace cannot serve it
    │   ├── NotTracingError  (also ValueError) .output / .input used where no trace is running
    │   └── InvokeError      (also ValueError) tracer.invoke(...) inside another invoke's body
    ├── OutOfOrderError      an edit of a module the forward has already run past
    ├── ModuleNotCalledError the forward finished without producing the value asked for
    │   └── SkippedModuleError a submodule of a module this invoke skipped with .skip
    ├── BarrierError         barrier(n) that fewer than n invokes of the forward reach
    ├── EditError            (also ValueError) a replacement that cannot stand in for the value
    ├── InputError           (also ValueError / TypeError) inputs the model cannot take
    │   └── MissingTokenizerError (also AttributeError) text inputs, but no tokenizer
    ├── SaveError            (also AttributeError) ``x.save()`` where lenslab cannot give x one
    ├── CacheKeyError        (also KeyError / AttributeError / IndexError) nothing cached there
    ├── RenameError          (also ValueError) a rename= entry that matches no module
    ├── SourceUnavailableError (also TypeError) .source of code that has no Python source
    └── DeviceError          (also RuntimeError) a device this machine does not have

The extra bases are the types nnsight raises in the same situations, so nnsight code that
catches ``ValueError``, ``AttributeError`` or ``KeyError`` keeps working.

Messages say what was attempted, with the user's own names, the rule, and the fix.
"""

from __future__ import annotations


class LensError(Exception):
    """Base of every lenslab error."""


class ModulePathError(LensError, AttributeError, IndexError):
    """A module path that does not exist in the wrapped model."""


class TraceStateError(LensError):
    """A module value was requested where no trace can provide it."""


class NotTracingError(TraceStateError, ValueError):
    """``.output`` / ``.input`` / ``.inputs`` read or set outside any trace of the model."""


class InvokeError(TraceStateError, ValueError):
    """``tracer.invoke(...)`` opened inside another invoke's body (invokes are siblings)."""


class OutOfOrderError(LensError):
    """An edit came after the forward pass had already used the value."""


class ModuleNotCalledError(LensError):
    """The forward pass ended without producing the requested value."""


class SkippedModuleError(ModuleNotCalledError):
    """A read of a submodule of a module the same invoke skipped with ``.skip``."""


class BarrierError(LensError):
    """``barrier(n)`` that fewer than ``n`` invokes of the forward reach."""


class EditError(LensError, ValueError):
    """A replacement value whose shape, dtype or structure does not fit."""


class InputError(LensError, ValueError, TypeError):
    """Inputs the wrapped model cannot be run on."""


class MissingTokenizerError(InputError, AttributeError):
    """Text inputs given to a language model wrapped without a tokenizer."""


class SaveError(LensError, AttributeError):
    """``x.save()`` on an object without ``.save``, in code whose source lenslab cannot read."""


class CacheKeyError(ModulePathError, KeyError):
    """A ``tracer.cache()`` lookup of a module that was not cached."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class RenameError(LensError, ValueError):
    """A ``rename=`` entry that names no module of the model, or clashes with a name in use."""


class SourceUnavailableError(LensError, TypeError):
    """``.source`` of a forward (or called function) that is not Python code with source."""


class ScanValueError(LensError, RuntimeError):
    """Code in a ``model.scan`` block that needs a tensor's values (``if``, ``.item()``): a scan
    has shapes only."""


class DeviceError(LensError, RuntimeError):
    """A device move to hardware this machine does not have."""


class LensWarning(UserWarning):
    """Warnings lenslab emits (our own tests turn them into errors)."""
