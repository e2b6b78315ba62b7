"""lenslab: read, edit, patch and steer model internals from a notebook.

Importing lenslab changes nothing in torch or transformers; hooks exist only while a trace runs.
"""

from ._lab import register_sidebar as _register_sidebar
from .engine.saving import save
from .errors import (
    BarrierError,
    CacheKeyError,
    DeviceError,
    EditError,
    InputError,
    InvokeError,
    LensError,
    LensWarning,
    MissingTokenizerError,
    ModuleNotCalledError,
    ModulePathError,
    NotTracingError,
    OutOfOrderError,
    RenameError,
    SaveError,
    ScanValueError,
    SkippedModuleError,
    SourceUnavailableError,
    TraceStateError,
)
from .models.language import LanguageModel
from .models.module import NNsight
from .remote import CONFIG
from .tools import (
    activation_patching,
    attribution_patching,
    logit_lens,
    steer,
    steering_vector,
)

__version__ = "0.1.0"

__all__ = [
    "CONFIG",
    "BarrierError",
    "CacheKeyError",
    "DeviceError",
    "EditError",
    "InputError",
    "InvokeError",
    "LanguageModel",
    "LensError",
    "LensWarning",
    "MissingTokenizerError",
    "ModuleNotCalledError",
    "ModulePathError",
    "NNsight",
    "NotTracingError",
    "OutOfOrderError",
    "RenameError",
    "SaveError",
    "ScanValueError",
    "SkippedModuleError",
    "SourceUnavailableError",
    "TraceStateError",
    "__version__",
    "activation_patching",
    "attribution_patching",
    "logit_lens",
    "save",
    "steer",
    "steering_vector",
]

_register_sidebar()  # inside a Jupyter kernel only: the lab sidebar's comm target
