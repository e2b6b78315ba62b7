"""Every error lenslab raises on purpose, so users can catch them as one family.

    LensError
    ├── ModulePathError      (also AttributeError / IndexError) no such module under that path
    ├── TraceStateError      .output / .input used where no trace is running
    ├── OutOfOrderError      an edit of a module the forward has already run past
    ├── ModuleNotCalledError the forward finished without producing the value asked for
    ├── EditError            (also ValueError) a replacement that cannot stand in for the value
    ├── InputError           (also ValueError / TypeError) inputs the model cannot take
    ├── CacheKeyError        (also KeyError / AttributeError / IndexError) nothing cached there
    ├── RenameError          (also ValueError) a rename= entry that matches no module
    └── DeviceError          (also RuntimeError) a device this machine does not have

Messages say what was attempted, with the user's own names, the rule, and the fix.
"""

from __future__ import annotations


class LensError(Exception):
    """Base of every lenslab error."""


class ModulePathError(LensError, AttributeError, IndexError):
    """A module path that does not exist in the wrapped model."""


class TraceStateError(LensError):
    """A module value was requested where no trace can provide it."""


class OutOfOrderError(LensError):
    """An edit came after the forward pass had already used the value."""


class ModuleNotCalledError(LensError):
    """The forward pass ended without producing the requested value."""


class EditError(LensError, ValueError):
    """A replacement value whose shape, dtype or structure does not fit."""


class InputError(LensError, ValueError, TypeError):
    """Inputs the wrapped model cannot be run on."""


class CacheKeyError(ModulePathError, KeyError):
    """A ``tracer.cache()`` lookup of a module that was not cached."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class RenameError(LensError, ValueError):
    """A ``rename=`` entry that names no module of the model, or clashes with a name in use."""


class DeviceError(LensError, RuntimeError):
    """A device move to hardware this machine does not have."""


class LensWarning(UserWarning):
    """Warnings lenslab emits (our own tests turn them into errors)."""
