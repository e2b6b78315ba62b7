"""The with-block where researchers write it, and what happens when things go wrong.

1. Contexts: functions, methods, loops, ``exec``, one-line bodies, ``try``, helpers called from
   the body, nested traces, real Jupyter kernels (plain and ``%%time`` cells, invokes).
2. Exceptions keep their type and point at the user's line (inline bodies, helpers, invokes,
   the model's own forward).
3. ``breakpoint()`` / pdb stop at the user's line, and a debugger or coverage tracer survives.
4. Reads in any order; edits of modules the forward already passed fail at once.
5. Clear errors: wrong paths, unused modules, replacements of the wrong shape or dtype.
6. After every kind of failure (KeyboardInterrupt included) the model is clean and exact.
7. Importing lenslab patches nothing; a trace leaves nothing behind.
8. Threads: two models, and one model, traced concurrently.
9. Direct calls of wrapped modules inside the block.

Ground truth never goes through lenslab: plain forward hooks (``hooked``) or direct module calls.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import threading
import traceback
import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

from lenslab import (
    EditError,
    LensError,
    LensWarning,
    ModuleNotCalledError,
    ModulePathError,
    NNsight,
    OutOfOrderError,
    TraceStateError,
)

from ..conftest import assert_clean, hooked, layers_of, make_tiny

THIS_FILE = __file__
PROMPT = "The Eiffel Tower is located in the city of"
OTHER_PROMPT = "One two three four five"


# -- shared models and ground truth ---------------------------------------------------------------


class Unused(nn.Module):
    """A network with a submodule its forward never calls, and a switch to interrupt it."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.first = nn.Linear(4, 4)
        self.second = nn.Linear(4, 4)
        self.spare = nn.Linear(4, 4)
        self.interrupt = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(self.first(x))
        if self.interrupt:
            raise KeyboardInterrupt
        return self.second(hidden)


@pytest.fixture
def net():
    return Unused()


@pytest.fixture
def x():
    torch.manual_seed(1)
    return torch.randn(2, 4)


@pytest.fixture
def seq():
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))


def truth(net, x):
    """(first's output, the network's output), through plain forward hooks."""
    with hooked({"first": net.first, "second": net.second}) as captured, torch.no_grad():
        net(x)
    return captured["first"], captured["second"]


def assert_no_trace_state():
    """Nothing of a finished trace is left in lenslab's registries or on torch."""
    from lenslab.engine import mediator, saving, tracer

    assert not tracer._open, tracer._open
    assert not mediator._bodies, mediator._bodies
    assert not saving._open_traces
    assert not hasattr(torch.ones(1), "save")


@pytest.fixture(autouse=True)
def no_leaks():
    """Fail the test that leaves a trace open (or a tracer swapped), and close it, so one engine
    bug shows up in the test that triggers it instead of in every test after it."""
    from lenslab.engine import tracer

    trace_before = sys.gettrace()
    yield
    leaked = [t for stack in list(tracer._open.values()) for t in stack]
    for open_trace in leaked:
        open_trace._close()
    swapped = sys.gettrace() is not trace_before
    sys.settrace(trace_before)
    assert not leaked, f"the test left {len(leaked)} trace(s) open"
    assert not swapped, "the test left sys.settrace changed"
    assert_no_trace_state()


def assert_exact_afterwards(model, net, x):
    """No hooks left; a new trace and a raw forward both give exact values."""
    assert_clean(net)
    assert_no_trace_state()
    first, out = truth(net, x)
    with model.trace(x):
        again = model.first.output.save()
        result = model.output.save()
    assert torch.equal(again, first) and torch.equal(result, out)
    with torch.no_grad():
        assert torch.equal(net(x), out)
    assert_clean(net)


def encode(lm, prompt):
    return lm.tokenizer(prompt, return_tensors="pt")


def lm_truth(lm, prompt, modules):
    """{name: output} of ``modules`` (name -> nn.Module) plus "logits", from a plain forward."""
    with hooked(modules) as captured, torch.no_grad():
        captured["logits"] = lm._model(**encode(lm, prompt)).logits
    return dict(captured)


def frames_in_this_file(error: BaseException) -> list[traceback.FrameSummary]:
    return [f for f in traceback.extract_tb(error.__traceback__) if f.filename == THIS_FILE]


def run_threads(*targets: Callable[[], None], timeout: float = 60) -> None:
    """Run ``targets`` on their own threads; fail (never hang) on a hang or an error."""
    errors: dict[int, BaseException] = {}

    def guarded(index, target):
        try:
            target()
        except BaseException as error:
            errors[index] = error

    threads = [
        threading.Thread(target=guarded, args=(i, t), daemon=True) for i, t in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a traced thread hung"
    for index, error in sorted(errors.items()):
        raise AssertionError(f"thread {index} failed: {error!r}") from error


# == 1. where the block is written ================================================================


def read_first(model, x):
    with model.trace(x):
        value = model.first.output.save()
    return value


class Probe:
    def __init__(self, model):
        self.model = model

    def read(self, x):
        with self.model.trace(x):
            self.value = self.model.second.output.save()
        return self.value

    def read_rows(self, x):
        """Invokes in a method: names bound in the bodies become the method's locals."""
        with self.model.trace() as tracer:
            with tracer.invoke(x[:1]):
                top = self.model.first.output.save()
            with tracer.invoke(x[1:]):
                rest = self.model.first.output.save()
        return torch.cat([top, rest])


def test_in_a_plain_function(net, x):
    first, _ = truth(net, x)
    assert torch.equal(read_first(NNsight(net), x), first)


def test_in_a_method(net, x):
    first, out = truth(net, x)
    probe = Probe(NNsight(net))
    assert torch.equal(probe.read(x), out)
    torch.testing.assert_close(probe.read_rows(x), first)


def test_in_a_for_loop_several_traces_with_edits(net, x):
    model = NNsight(net)
    for scale in (1.0, 2.0, -3.0):
        with model.trace(x * scale):
            hidden = model.first.output.clone().save()
            model.first.output[:, 0] = scale
            out = model.output.save()

        def set_column(t, scale=scale):
            t = t.clone()
            t[:, 0] = scale
            return t

        with hooked({"first": net.first}, edit={"first": set_column}) as captured:
            with torch.no_grad():
                expected = net(x * scale)
        assert torch.equal(hidden, net.first(x * scale))
        assert torch.equal(out, expected)
        assert captured["first"][0, 0] == scale
    assert_clean(net)


def test_one_line_body(seq, x):
    m = NNsight(seq)
    with hooked({"0": seq[0]}) as expected, torch.no_grad():
        seq(x)
    with m.trace(x): h = m[0].output.save()  # noqa: E701  # fmt: skip
    assert torch.equal(h, expected["0"])
    assert_clean(seq)


def test_a_body_that_begins_with_try(net, x):
    model = NNsight(net)
    _, out = truth(net, x)
    finished = []
    with model.trace(x):
        try:
            two = model.second.output.save()
        except ModuleNotCalledError:
            raise
        finally:
            finished.append(True)
    assert torch.equal(two, out) and finished == [True]
    assert_clean(net)


def test_an_invoke_body_that_begins_with_try(net, x):
    model = NNsight(net)
    first, _ = truth(net, x)
    finished = []
    with model.trace() as tracer:
        with tracer.invoke(x):
            try:
                three = model.first.output.save()
            finally:
                finished.append(True)
    torch.testing.assert_close(three, first)
    assert finished == [True]
    assert_clean(net)
    assert_no_trace_state()


def test_a_validated_body_that_begins_with_try(net, x):
    """validate=True runs the body twice (fake tensors first), so it is deferred as well."""
    model = NNsight(net)
    first, _ = truth(net, x)
    with model.trace(x, validate=True):
        try:
            four = model.first.output.save()
        except ModuleNotCalledError:
            raise
    assert torch.equal(four, first)
    assert_clean(net)
    assert_no_trace_state()


def grab(envoy):
    """A helper a user writes: read any module's output."""
    return envoy.output


def zero_out(envoy):
    envoy.output[:] = 0


def summarize(model, x):
    """A helper that runs its own trace, on another model, while the caller's trace is open."""
    with model.trace(x):
        hidden = model[0].output.save()
    return hidden.sum(dim=-1)


def test_helper_functions_called_from_the_body(net, seq, x):
    model, other = NNsight(net), NNsight(seq)
    with torch.no_grad():
        hidden = torch.relu(net.first(x))
        expected_out = net.second(torch.zeros_like(hidden))
        expected_summary = seq[0](net.first(x)).sum(dim=-1)
    with model.trace(x):
        first = grab(model.first).clone()
        summary = summarize(other, first)  # a nested trace of another model
        zero_out(model.first)  # edit through a helper: the forward continues with zeros
        out = grab(model.second)
    assert torch.equal(first, net.first(x))
    assert torch.equal(summary, expected_summary)
    assert torch.equal(out, expected_out)
    assert_clean(net)
    assert_clean(seq)
    assert_no_trace_state()


def exec_without_a_namespace(model, x, found):
    exec("with model.trace(x):\n    value = model.first.output.save()\nfound.append(value)\n")


def test_exec_with_and_without_a_namespace(net, x):
    model = NNsight(net)
    first, _ = truth(net, x)
    code = "with model.trace(x):\n    value = model.first.output.save()\n"
    namespace = {"model": model, "x": x}
    exec(code, namespace)
    assert torch.equal(namespace["value"], first)
    scope = {"model": model, "x": x}
    exec(code, {}, scope)  # separate globals and locals
    assert torch.equal(scope["value"], first)
    found: list[torch.Tensor] = []
    exec_without_a_namespace(model, x, found)  # the calling function's own scope
    assert len(found) == 1 and torch.equal(found[0], first)
    assert_clean(net)


def test_exec_with_invokes_runs_each_invoke_alone_with_one_warning(net, x, monkeypatch):
    import lenslab.engine.tracer as tracer_module

    monkeypatch.setattr(tracer_module, "_warned_no_source", False)
    model = NNsight(net)
    first, _ = truth(net, x)
    code = textwrap.dedent(
        """
        with model.trace() as tracer:
            with tracer.invoke(x[:1]):
                a = model.first.output.save()
            with tracer.invoke(x[1:]):
                b = model.first.output.save()
        """
    )
    namespace = {"model": model, "x": x}
    with pytest.warns(LensWarning, match="own forward pass") as caught:
        exec(code, namespace)
    assert len(caught) == 1
    torch.testing.assert_close(torch.cat([namespace["a"], namespace["b"]]), first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process: no second warning
        exec(code, namespace)
    torch.testing.assert_close(torch.cat([namespace["a"], namespace["b"]]), first)
    assert_clean(net)


def test_invokes_in_a_function_bind_its_locals_and_closures(net, x):
    model = NNsight(net)
    first, _ = truth(net, x)
    calls = []
    handle = net.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape[0]))
    try:

        def batched():
            with model.trace() as tracer:
                with tracer.invoke(x[:1]):
                    a = model.first.output.save()
                with tracer.invoke(x[1:]):
                    b = model.first.output.save()
            joined = lambda: torch.cat([a, b])  # noqa: E731  # a and b are cells
            return joined(), a, b

        joined, a, b = batched()
    finally:
        handle.remove()
    assert calls == [2]  # one forward over both invokes
    torch.testing.assert_close(joined, first)
    torch.testing.assert_close(torch.cat([a, b]), first)
    assert sys.gettrace() is None
    assert_clean(net)


# -- real Jupyter kernels -------------------------------------------------------------------------


def run_notebook(cells: list[str], kernel_name: str, cwd) -> list[dict[str, str]]:
    """Execute ``cells`` in a fresh kernel; each cell's {"stdout": ..., "stderr": ...}."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in cells]
    client = nbclient.NotebookClient(
        notebook, timeout=120, kernel_name=kernel_name, resources={"metadata": {"path": cwd}}
    )
    client.execute()
    return [
        {
            name: "".join(
                o.get("text", "")
                for o in cell.outputs
                if o.output_type == "stream" and o.get("name") == name
            )
            for name in ("stdout", "stderr")
        }
        for cell in notebook.cells
    ]


NOTEBOOK_SETUP = """
    import sys, traceback, warnings
    import torch, torch.nn as nn
    from lenslab import NNsight, LensWarning
    warnings.simplefilter("error", LensWarning)  # fallback to unbatched invokes is a failure here
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    model = NNsight(net)
    x = torch.randn(3, 4)

    def hooked(edit=None):
        '''Ground truth: net's submodule outputs from plain forward hooks, with optional edits.'''
        seen, handles = {}, []
        for i, module in enumerate(net):
            def hook(module, args, output, i=i):
                if edit and i in edit:
                    output = edit[i](output)
                seen[i] = output
                return output
            handles.append(module.register_forward_hook(hook))
        with torch.no_grad():
            seen["out"] = net(x)
        for h in handles:
            h.remove()
        return seen

    forwards = []
    net.register_forward_pre_hook(lambda m, a: forwards.append(a[0].shape[0]))
    print(sys.executable)
"""

NOTEBOOK_PLAIN = """
    with model.trace(x):
        h = model[0].output.save()
        model[1].output[:] = 0
        out = model.output.save()
    truth = hooked({1: torch.zeros_like})
    print("plain", torch.equal(h, truth[0]), torch.equal(out, truth["out"]))
"""

NOTEBOOK_ANY_ORDER = """
    with model.trace(x):
        late = model[2].output.save()
        early = model[0].output.save()
    truth = hooked()
    print("any order", torch.equal(late, truth[2]), torch.equal(early, truth[0]))
"""

NOTEBOOK_INVOKES = """
    forwards.clear()
    with model.trace() as tracer:
        with tracer.invoke(x[:1]):
            a = model[0].output.save()
        with tracer.invoke(x[1:]):
            b = model[0].output.save()
    batches = list(forwards)
    print("invokes", batches, torch.allclose(torch.cat([a, b]), hooked()[0]))
"""

NOTEBOOK_INVOKES_IN_A_FUNCTION = """
    def rows():
        forwards.clear()
        with model.trace() as tracer:
            with tracer.invoke(x[:2]):
                c = model[2].output.save()
            with tracer.invoke(x[2:]):
                d = model[2].output.save()
        return torch.cat([c, d])

    values = rows()
    batches = list(forwards)
    print("function", torch.allclose(values, hooked()[2]), batches, "c" in globals())
"""

NOTEBOOK_ERROR = """
    try:
        with model.trace(x):
            model[0].output.save()
            1 / 0  # the cell's own line
    except ZeroDivisionError as error:
        last = traceback.extract_tb(error.__traceback__)[-1]
        here = sys._getframe().f_code.co_filename
        print("error", last.line, last.filename == here)
    with model.trace(x):
        again = model.output.save()
    print("after", torch.equal(again, hooked()["out"]), hasattr(again, "save"))
"""


NOTEBOOK_SAVE_ANYTHING = """
    with model.trace(x):
        kept = [].save()
        kept.append(model[0].output)
        total = model[2].output.sum().item().save()
    truth = hooked()
    print("save anything", torch.equal(kept[0], truth[0]), total == truth["out"].sum().item())
"""


def test_in_a_jupyter_kernel(kernel_name, tmp_path):
    cells = [
        NOTEBOOK_SETUP,
        NOTEBOOK_PLAIN,
        NOTEBOOK_ANY_ORDER,
        NOTEBOOK_INVOKES,
        NOTEBOOK_INVOKES_IN_A_FUNCTION,
        NOTEBOOK_ERROR,
        NOTEBOOK_SAVE_ANYTHING,
    ]
    outputs = run_notebook(cells, kernel_name, str(tmp_path))
    stdout = [o["stdout"] for o in outputs]
    everything = "\n".join(f"{o['stdout']}{o['stderr']}" for o in outputs)
    assert stdout[0].strip() == sys.executable, everything  # the venv's interpreter
    assert stdout[1].strip() == "plain True True", everything
    assert stdout[2].strip() == "any order True True", everything
    assert stdout[3].strip() == "invokes [3] True", everything  # one batched forward
    assert stdout[4].strip() == "function True [3] False", everything  # locals, not globals
    assert stdout[5].splitlines() == [
        "error 1 / 0  # the cell's own line True",
        "after True False",
    ], everything
    assert stdout[6].strip() == "save anything True True", everything


def time_cell(body: str) -> str:
    """``body`` as a %%time cell that prints its error instead of stopping the notebook."""
    indented = textwrap.indent(textwrap.dedent(body), "    ")
    return (
        "%%time\ntry:\n"
        f"{indented}"
        "except Exception as error:\n"
        "    print('failed', type(error).__name__, error)\n"
    )


NOTEBOOK_TIMED_INVOKES = """
    forwards.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with model.trace() as tracer:
            with tracer.invoke(x[:1]):
                a = model[0].output.save()
            with tracer.invoke(x[1:]):
                b = model[0].output.save()
    batches = list(forwards)
    print("invokes", batches, torch.allclose(torch.cat([a, b]), hooked()[0]), len(caught))
"""


NOTEBOOK_TIMED_SAVE_ON_A_LIST = """
    with model.trace(x):
        kept = [].save()
"""


def test_in_a_jupyter_time_cell(kernel_name, tmp_path):
    """A %%time cell compiles its body under a name linecache does not know ("<timed exec>").

    Without source, reads still work in any order (every module's value is kept), each
    invoke runs its own forward with identical values and one LensWarning, and ``.save()`` on
    a list is a SaveError naming ``lenslab.save``.
    """
    cells = [
        NOTEBOOK_SETUP,
        time_cell(NOTEBOOK_PLAIN),
        time_cell(NOTEBOOK_ANY_ORDER),
        time_cell(NOTEBOOK_TIMED_INVOKES),
        time_cell(NOTEBOOK_TIMED_SAVE_ON_A_LIST),
    ]
    outputs = run_notebook(cells, kernel_name, str(tmp_path))
    first_lines = [(o["stdout"].splitlines() or [""])[0] for o in outputs[1:]]
    assert all("Wall time" in o["stdout"] for o in outputs[1:])  # it really was %%time
    assert first_lines == [
        "plain True True",
        "any order True True",
        "invokes [1, 2] True 1",
        "failed SaveError 'list' object has no .save(): lenslab gives .save() to any object in "
        "blocks whose source it can read (a file or a notebook cell), and this block has none "
        "(code run by exec, or a %%time cell). Use lenslab.save(value) here: it works on any "
        "object, anywhere.",
    ]


# == 2. exceptions keep their type and line =======================================================


def test_an_exception_in_the_body_points_at_the_users_line(net, x):
    model = NNsight(net)
    with pytest.raises(ZeroDivisionError) as caught:
        with model.trace(x):
            model.first.output.save()
            1 / 0  # the user's line  # noqa: B018
    last = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert last.filename == THIS_FILE and "1 / 0  # the user's line" in last.line
    assert_exact_afterwards(model, net, x)


def failing_helper(value):
    raise LookupError(f"bad value of shape {list(value.shape)}")  # the helper's line


def test_an_exception_in_a_helper_called_from_the_body(net, x):
    model = NNsight(net)
    with pytest.raises(LookupError, match=r"shape \[2, 4\]") as caught:
        with model.trace(x):
            failing_helper(model.first.output)  # the calling line
    ours = frames_in_this_file(caught.value)
    assert "the helper's line" in ours[-1].line
    assert "the calling line" in ours[-2].line
    assert_exact_afterwards(model, net, x)


def test_an_exception_in_an_invoke_points_at_the_users_line(net, x):
    model = NNsight(net)
    with pytest.raises(KeyError) as caught:
        with model.trace() as tracer:
            with tracer.invoke(x[:1]):
                model.first.output.save()
            with tracer.invoke(x[1:]):
                model.first.output.save()
                {}["missing"]  # the user's line in an invoke
    assert caught.value.args == ("missing",)
    last = frames_in_this_file(caught.value)[-1]
    assert "the user's line in an invoke" in last.line
    assert traceback.extract_tb(caught.value.__traceback__)[-1] == last
    assert_exact_afterwards(model, net, x)


class Faulty(nn.Module):
    def forward(self, x):
        raise RuntimeError("the model's own bug")  # the forward's line


def test_an_exception_in_the_forward_keeps_its_type_and_both_lines(seq, x):
    faulty = nn.Sequential(seq[0], Faulty(), seq[2])
    model = NNsight(faulty)
    with pytest.raises(RuntimeError, match="the model's own bug") as caught:
        with model.trace(x):
            model[0].output.clone()
            model[2].output.save()  # the body's line that waited for the forward
    ours = frames_in_this_file(caught.value)
    assert "the forward's line" in ours[-1].line
    assert any("the body's line that waited" in f.line for f in ours)
    assert_clean(faulty)
    assert_no_trace_state()
    # A body that only keeps references runs the whole forward at its first read.
    with pytest.raises(RuntimeError, match="the model's own bug") as caught:
        with model.trace(x):
            model[0].output.save()  # the first read of a passive body
            model[2].output.save()
    ours = frames_in_this_file(caught.value)
    assert "the forward's line" in ours[-1].line
    assert any("the first read of a passive body" in f.line for f in ours)
    assert_clean(faulty)
    assert_no_trace_state()


# == 3. the debugger ==============================================================================


DEBUG_SCRIPT = """
import torch, torch.nn as nn
from lenslab import NNsight
torch.manual_seed(0)
model = NNsight(nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)))
with model.trace(torch.ones(2, 3)):
    hidden = model[0].output
    breakpoint()
    out = model[2].output
    done = True
print("finished", done, out.shape)
with model.trace() as tracer:
    with tracer.invoke(torch.ones(4, 3)):
        rows = model[0].output
        breakpoint()
        rows2 = model[2].output
print("invoked", rows2.shape)
"""


def run_pdb(tmp_path, script: str, commands: list[str]) -> tuple[str, str]:
    path = tmp_path / "debug_me.py"
    path.write_text(textwrap.dedent(script).lstrip())
    env = {**os.environ, "PYTHONBREAKPOINT": "pdb.set_trace", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(path)],
        input="".join(f"{c}\n" for c in commands),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    return str(path), result.stdout + result.stderr


# Python 3.13 enters the debugger on the breakpoint() line itself, older ones on the line after
# it (What's New in Python 3.13, pdb): there, one more `n` reaches the same line.
TO_NEXT_LINE = ["n"] if sys.version_info >= (3, 13) else []


def test_breakpoint_stops_at_the_users_line(tmp_path):
    path, output = run_pdb(
        tmp_path,
        DEBUG_SCRIPT,
        [
            *(*TO_NEXT_LINE, "p hidden.shape", "n", "p out.shape", "c"),  # the main body
            *(*TO_NEXT_LINE, "p rows.shape", "c"),  # the deferred invoke body
        ],
    )
    assert f"> {path}(8)<module>()" in output, output  # the line after breakpoint()
    assert "-> out = model[2].output" in output
    assert "(Pdb) torch.Size([2, 5])" in output  # p hidden.shape
    assert f"> {path}(9)<module>()" in output, output  # `n` steps over a read, to the next line
    assert "(Pdb) torch.Size([2, 2])" in output  # p out.shape
    assert "finished True torch.Size([2, 2])" in output
    assert f"> {path}(15)<module>()" in output, output  # inside the deferred invoke body
    assert "-> rows2 = model[2].output" in output
    assert "(Pdb) torch.Size([4, 5])" in output  # p rows.shape
    assert "invoked torch.Size([4, 2])" in output
    assert "Traceback" not in output


BREAK_AFTER_INVOKES = """
import torch, torch.nn as nn
from lenslab import NNsight
model = NNsight(nn.Sequential(nn.Linear(3, 5)))
breakpoint()
with model.trace() as tracer:
    with tracer.invoke(torch.ones(2, 3)):
        hidden = model[0].output
after = hidden.shape
print("finished", after)
"""


def test_a_pdb_breakpoint_after_a_trace_with_invokes_is_still_hit(tmp_path):
    """pdb's tracing survives the trick that skips deferred invoke bodies."""
    path, output = run_pdb(tmp_path, BREAK_AFTER_INVOKES, ["b 8", "c", "p hidden.shape", "c"])
    assert f"> {path}(8)<module>()" in output, output
    assert "(Pdb) torch.Size([2, 5])" in output, output
    assert "finished torch.Size([2, 5])" in output


def test_a_running_tracer_survives_invokes(net, x):
    """A debugger's or coverage's sys.settrace tracer is still installed, and still sees lines."""
    model = NNsight(net)
    first, _ = truth(net, x)
    seen: list[int] = []

    def local(frame, event, arg):
        if event == "line":
            seen.append(frame.f_lineno)
        return local

    def global_tracer(frame, event, arg):
        return local if frame.f_code is traced.__code__ else None

    def traced():
        with model.trace() as tracer:
            with tracer.invoke(x[:1]):
                a = model.first.output.save()
            with tracer.invoke(x[1:]):
                b = model.first.output.save()
        marker = "after the trace"
        return torch.cat([a, b]), marker

    start = traced.__code__.co_firstlineno
    previous = sys.gettrace()
    sys.settrace(global_tracer)
    try:
        values, _ = traced()
        still = sys.gettrace()
    finally:
        sys.settrace(previous)
    torch.testing.assert_close(values, first)
    assert still is global_tracer, f"lenslab replaced the running tracer with {still!r}"
    assert start + 6 in seen, f"the tracer missed the line after the trace: {seen}"
    assert_clean(net)


# == 4. reads in any order, edits in forward order ================================================


def test_reads_in_any_order_on_smollm2(smollm2):
    with smollm2.trace(PROMPT):
        layer = smollm2.model.layers[5].output.save()
        attention = smollm2.model.layers[5].self_attn.output.save()  # runs inside layer 5
        late = smollm2.model.layers[20].output.save()
        early = smollm2.model.layers[2].output.save()  # long passed
    hf = smollm2._model.model
    expected = lm_truth(
        smollm2,
        PROMPT,
        {"5": hf.layers[5], "attn": hf.layers[5].self_attn, "20": hf.layers[20], "2": hf.layers[2]},
    )
    assert torch.equal(layer, expected["5"])
    assert torch.equal(attention[0], expected["attn"][0])
    assert torch.equal(late, expected["20"]) and torch.equal(early, expected["2"])
    assert_clean(smollm2._model)


def test_reads_in_any_order_on_gpt2_names(tiny_gpt2):
    """The seed's form: ``h[i].output`` and then ``h[i].attn.output``."""
    h = tiny_gpt2.transformer.h
    with tiny_gpt2.trace(PROMPT):
        block = h[1].output.save()
        attention = h[1].attn.output.save()
        mlp = h[1].mlp.output.save()
        last = h[2].output.save()
        first = h[0].output.save()
    blocks = tiny_gpt2._model.transformer.h
    expected = lm_truth(
        tiny_gpt2,
        PROMPT,
        {
            "1": blocks[1],
            "attn": blocks[1].attn,
            "mlp": blocks[1].mlp,
            "2": blocks[2],
            "0": blocks[0],
        },
    )
    assert torch.equal(block, expected["1"]) and torch.equal(mlp, expected["mlp"])
    assert torch.equal(attention[0], expected["attn"][0])
    assert torch.equal(last, expected["2"]) and torch.equal(first, expected["0"])
    assert_clean(tiny_gpt2._model)


def test_writing_a_passed_module_fails_on_that_line(net, x):
    model = NNsight(net)
    lines = []
    with pytest.raises(
        OutOfOrderError, match=r"cannot set model\.first\.output.*model\.second"
    ) as caught:
        with model.trace(x):
            model.second.output.save()
            lines.append("before")
            model.first.output = torch.zeros(2, 4)  # the edit's line
            lines.append("after")  # never reached: raised right away
    assert lines == ["before"]
    assert "the edit's line" in frames_in_this_file(caught.value)[-1].line
    assert_exact_afterwards(model, net, x)


def test_writing_a_passed_input_fails_on_that_line(net, x):
    model = NNsight(net)
    with pytest.raises(OutOfOrderError, match=r"cannot set model\.second\.input"):
        with model.trace(x):
            model.output.save()
            model.second.input = torch.zeros(2, 4)
    assert_exact_afterwards(model, net, x)


def test_writing_a_passed_layer_of_a_language_model(tiny_llama):
    layers = tiny_llama.model.layers
    with pytest.raises(OutOfOrderError, match=r"cannot set model\.model\.layers\[0\]\.output"):
        with tiny_llama.trace(PROMPT):
            late = layers[2].output
            layers[0].output = late  # the edit's line
    assert_clean(tiny_llama._model)
    assert_no_trace_state()


def test_editing_a_passed_value_in_place_warns_and_changes_only_that_copy(net, x):
    model = NNsight(net)
    first_truth, out_truth = truth(net, x)
    with pytest.warns(LensWarning, match=r"model\.first\.output was edited in place after") as w:
        with model.trace(x):
            first = model.first.output
            model.second.output.save()
            first[:] = 0
            out = model.output.save()  # the line the edit is noticed at
    assert [warning.lineno for warning in w] == [frames_lineno("the line the edit is noticed at")]
    assert all(warning.filename == THIS_FILE for warning in w)
    assert torch.equal(first, torch.zeros_like(first)) and first_truth.abs().sum() > 0
    assert torch.equal(out, out_truth)  # the model computed with the unedited value
    assert_exact_afterwards(model, net, x)


def frames_lineno(marker: str) -> int:
    """The line of this file that carries ``marker`` in a comment."""
    with open(THIS_FILE) as file:
        lines = [i for i, line in enumerate(file, 1) if line.rstrip().endswith("# " + marker)]
    assert len(lines) == 1, lines
    return lines[0]


# == 5. bad input: clear messages =================================================================


def test_wrong_module_path_names_the_children(smollm2):
    with pytest.raises(AttributeError, match=r"embed_tokens, layers, norm, rotary_emb") as caught:
        smollm2.model.layer  # noqa: B018
    assert "Did you mean model.model.layers?" in str(caught.value)
    assert isinstance(caught.value, ModulePathError)
    with pytest.raises(IndexError, match=r"holds 30 modules \(indices 0-29\)") as caught:
        smollm2.model.layers[30]
    assert isinstance(caught.value, ModulePathError)


def test_wrong_module_path_on_a_plain_module(net, seq):
    with pytest.raises(AttributeError, match=r"first, second, spare.*Did you mean model\.second"):
        NNsight(net).secnd  # noqa: B018
    with pytest.raises(IndexError, match=r"model\[3\] does not exist.*indices 0-2"):
        NNsight(seq)[3]


def test_a_module_the_forward_never_calls(net, x):
    model = NNsight(net)
    with pytest.raises(ModuleNotCalledError, match=r"model\.spare\.output was never produced"):
        with model.trace(x):
            model.spare.output.save()
    assert_exact_afterwards(model, net, x)


def test_replacement_of_the_wrong_shape_or_dtype(net, x):
    model = NNsight(net)
    with pytest.raises(EditError, match=r"model\.first\.output.*shape \[2, 3\].*shape \[2, 4\]"):
        with model.trace(x):
            model.first.output = torch.zeros(2, 3)
    with pytest.raises(EditError, match=r"model\.first\.output.*dtype torch\.float64") as caught:
        with model.trace(x):
            model.first.output = torch.zeros(2, 4, dtype=torch.float64)
    assert isinstance(caught.value, ValueError) and "torch.float32" in str(caught.value)
    assert_exact_afterwards(model, net, x)


def test_replacement_of_the_wrong_shape_in_a_language_model(tiny_llama):
    mlp = tiny_llama.model.layers[1].mlp
    with pytest.raises(EditError, match=r"model\.model\.layers\[1\]\.mlp\.output") as caught:
        with tiny_llama.trace(PROMPT):
            mlp.output = torch.zeros(1, 3, 32)
    n = encode(tiny_llama, PROMPT).input_ids.shape[1]
    assert "[1, 3, 32]" in str(caught.value) and f"[1, {n}, 32]" in str(caught.value)
    assert_clean(tiny_llama._model)


def test_values_outside_a_trace(net):
    model = NNsight(net)
    with pytest.raises(TraceStateError, match=r"model\.first\.output is only available inside"):
        model.first.output  # noqa: B018


# == 6. clean after every kind of failure =========================================================


FAILURES = {
    "path": ModulePathError,
    "out_of_order": OutOfOrderError,
    "in_place": LensWarning,  # a warning, raised as an error by the tests' configuration
    "not_called": ModuleNotCalledError,
    "shape": EditError,
    "dtype": EditError,
    "interrupt_in_body": KeyboardInterrupt,
    "interrupt_in_forward": KeyboardInterrupt,  # the model raises it (the fixtures' switch)
}


def provoke(kind, model, layer, spare, inputs, invoke):
    """Make a trace fail in the way ``kind`` names; ``layer`` is a module the forward calls.

    The bodies are written out here, not in helpers, so lenslab's source scan sees their reads
    (helpers hide them); the inline and the invoke form are the same code.
    """
    if invoke:
        with model.trace() as tracer:
            with tracer.invoke(inputs):
                if kind == "path":
                    layer.outptu  # noqa: B018
                elif kind == "out_of_order":
                    model.output.save()
                    layer.output = layer.output
                elif kind == "in_place":
                    value = layer.output
                    model.output.save()
                    value[:] = 0
                    model.output.save()
                elif kind == "not_called":
                    spare.output.save()
                elif kind == "shape":
                    value = layer.output
                    layer.output = torch.zeros(*value.shape[:-1], value.shape[-1] + 1)
                elif kind == "dtype":
                    layer.output = layer.output.double()
                elif kind == "interrupt_in_body":
                    layer.output.save()
                    raise KeyboardInterrupt
                else:
                    model.output.save()
    else:
        with model.trace(inputs):
            if kind == "path":
                layer.outptu  # noqa: B018
            elif kind == "out_of_order":
                model.output.save()
                layer.output = layer.output
            elif kind == "in_place":
                value = layer.output
                model.output.save()
                value[:] = 0
                model.output.save()
            elif kind == "not_called":
                spare.output.save()
            elif kind == "shape":
                value = layer.output
                layer.output = torch.zeros(*value.shape[:-1], value.shape[-1] + 1)
            elif kind == "dtype":
                layer.output = layer.output.double()
            elif kind == "interrupt_in_body":
                layer.output.save()
                raise KeyboardInterrupt
            else:
                model.output.save()


@pytest.mark.parametrize("invoke", [False, True], ids=["inline", "invoke"])
@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_plain_module_is_clean_after(kind, invoke, net, x):
    model = NNsight(net)
    net.interrupt = kind == "interrupt_in_forward"
    try:
        with pytest.raises(FAILURES[kind]):
            provoke(kind, model, model.first, model.spare, x, invoke)
    finally:
        net.interrupt = False
    assert_exact_afterwards(model, net, x)


@pytest.fixture(scope="module")
def fragile_lm(tokenizer):
    """A tiny Llama with an unused submodule, and a layer that can raise KeyboardInterrupt."""
    lm = make_tiny("llama", tokenizer, seed=3)
    hf = lm._model
    hf.model.spare = nn.Linear(32, 32)
    hf.interrupt = False

    def interrupt(module, args):
        if hf.interrupt:
            raise KeyboardInterrupt

    hf.model.layers[2].register_forward_pre_hook(interrupt)
    expected = lm_truth(lm, PROMPT, {"layer": hf.model.layers[1]})
    return lm, expected


@pytest.mark.parametrize("invoke", [False, True], ids=["inline", "invoke"])
@pytest.mark.parametrize("kind", list(FAILURES))
def test_a_language_model_is_clean_after(kind, invoke, fragile_lm):
    lm, expected = fragile_lm
    hf = lm._model
    hf.interrupt = kind == "interrupt_in_forward"
    try:
        with pytest.raises(FAILURES[kind]):
            provoke(kind, lm, lm.model.layers[1], lm.model.spare, PROMPT, invoke)
    finally:
        hf.interrupt = False
    assert_clean(hf)
    assert_no_trace_state()
    with lm.trace(PROMPT):
        again = lm.model.layers[1].output.save()
        logits = lm.output.logits.save()
    assert torch.equal(again, expected["layer"]) and torch.equal(logits, expected["logits"])
    fresh = lm_truth(lm, PROMPT, {"layer": layers_of(hf)[1]})
    assert torch.equal(fresh["layer"], expected["layer"])
    assert torch.equal(fresh["logits"], expected["logits"])
    assert_clean(hf)


def test_an_attached_module_the_forward_never_calls(fragile_lm):
    lm, _ = fragile_lm
    with pytest.raises(ModuleNotCalledError, match=r"model\.model\.spare\.output was never"):
        with lm.trace(PROMPT):
            lm.model.spare.output.save()
    assert_clean(lm._model)


def test_ctrl_c_while_the_trace_installs_its_hooks(net, x, monkeypatch):
    """A KeyboardInterrupt can arrive at any bytecode; here, between two hook installations
    (simulated deterministically: the second module to watch raises it)."""
    from lenslab.engine.interleaver import Interleaver

    real_watch = Interleaver.watch_each
    calls = []

    def interrupting(targets):
        for module, kind in targets:
            calls.append(module)
            if len(calls) == 2:
                raise KeyboardInterrupt
            yield module, kind

    def interrupted(self, targets, **options):
        return real_watch(self, interrupting(targets), **options)

    monkeypatch.setattr(Interleaver, "watch_each", interrupted)
    model = NNsight(net)
    with pytest.raises(KeyboardInterrupt):
        with model.trace(x):
            model.first.output.save()
            model.second.output.save()
    monkeypatch.undo()
    assert len(calls) == 2
    assert_exact_afterwards(model, net, x)


def test_generator_closed_mid_trace_is_clean(net, x):
    model = NNsight(net)

    def stream():
        with model.trace(x):
            yield model.first.output.clone()
            yield model.second.output.clone()

    values = stream()
    first = next(values)
    values.close()  # GeneratorExit inside the body, the forward paused mid-way
    assert torch.equal(first, truth(net, x)[0])
    assert_exact_afterwards(model, net, x)


def test_two_traces_of_one_model_interleaved_on_one_thread(net, x):
    """asyncio tasks (or generators) interleave bodies on one thread: each trace must see its
    own forward, or refuse with a LensError; never hand one trace the other's values."""
    model = NNsight(net)

    async def job(inputs):
        with model.trace(inputs):
            hidden = model.first.output.clone()
            await asyncio.sleep(0)  # the other task's trace opens here
            out = model.second.output.clone()
        return hidden, out

    async def both():
        return await asyncio.gather(job(x), job(-x), return_exceptions=True)

    for inputs, result in zip((x, -x), asyncio.run(both())):
        if isinstance(result, LensError):
            continue
        assert not isinstance(result, BaseException), result
        expected_first, expected_out = truth(net, inputs)
        assert torch.equal(result[0], expected_first)
        assert torch.equal(result[1], expected_out), "a trace got another trace's value"
    assert_exact_afterwards(model, net, x)


# == 7. nothing patched at import, nothing left after a trace =====================================


IMPORT_SCRIPT = """
import builtins, sys, threading
import torch
from transformers.utils.generic import ModelOutput

def snapshot():
    return {
        "Tensor": dict(torch.Tensor.__dict__),
        "TensorBase": dict(torch._C.TensorBase.__dict__),
        "Module": dict(torch.nn.Module.__dict__),
        "Module.__call__": torch.nn.Module.__call__,
        "ModelOutput": dict(ModelOutput.__dict__),
        "global forward hooks": dict(torch.nn.modules.module._global_forward_hooks),
        "global pre hooks": dict(torch.nn.modules.module._global_forward_pre_hooks),
        "builtins": dict(vars(builtins)),
        "excepthook": sys.excepthook,
        "displayhook": sys.displayhook,
        "gettrace": sys.gettrace(),
        "getprofile": sys.getprofile(),
        "threading trace": threading.gettrace(),
    }

def changed(before, after):
    out = []
    for key, old in before.items():
        new = after[key]
        if isinstance(old, dict):
            out += [f"{key}.{n}" for n in set(old) | set(new) if old.get(n) is not new.get(n)]
        elif old is not new:
            out.append(key)
    return sorted(out)

before = snapshot()
import lenslab
from lenslab import LanguageModel, NNsight
print("import", changed(before, snapshot()))

net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.ReLU())
model = NNsight(net)
with model.trace(torch.ones(1, 2)):
    hidden = model[0].output.save()
    inside = hasattr(hidden, "save"), torch.Tensor.backward is before["Tensor"]["backward"]
first = snapshot()
for _ in range(3):
    with model.trace() as tracer:
        with tracer.invoke(torch.ones(1, 2)):
            rows = model[0].output.save()
print("inside", *inside)
print("first trace", changed(before, first))
print("later traces", changed(first, snapshot()))
print("after", hasattr(hidden, "save"), torch.Tensor.backward is before["Tensor"]["backward"])
"""


def test_import_patches_nothing_and_a_trace_leaves_nothing():
    """The first trace gives tensors a `save` (and a `backward`) that act only while a trace is
    open; later traces change no class: a class changed on every trace loses CPython's lookup
    caches (for good, on 3.13)."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "import []",
        "inside True False",
        "first trace ['ModelOutput.save', 'Tensor.backward', 'Tensor.save']",
        "later traces []",
        "after False True",
    ], result.stdout + result.stderr


# == 8. threads ===================================================================================


def overlapping(model, x, barrier, network, rounds=10):
    """A body that pauses the forward mid-way until the other thread's forward is paused too."""

    def work():
        for _ in range(rounds):
            with model.trace(x):
                first = model.first.output.clone().save()
                barrier.wait()
                model.first.output[:] = 0
                out = model.output.save()
            assert torch.equal(first, network.first(x))
            assert torch.equal(out, network.second(torch.zeros(2, 4)))

    return work


def overlapping_invokes(model, x, barrier, network, rounds=10):
    """The same with deferred invoke bodies (run inside the batched forward's greenlets)."""

    def work():
        for _ in range(rounds):
            with model.trace() as tracer:
                with tracer.invoke(x[:1]):
                    top = model.first.output.clone().save()
                    barrier.wait()
                with tracer.invoke(x[1:]):
                    model.first.output[:] = 0
                    out = model.output.save()
            torch.testing.assert_close(top, network.first(x[:1]))
            torch.testing.assert_close(out, network.second(torch.zeros(1, 4)))

    return work


@pytest.mark.parametrize("work", [overlapping, overlapping_invokes], ids=["inline", "invokes"])
def test_two_models_from_two_threads_at_once(work, net, x):
    other = Unused(seed=5)
    barrier = threading.Barrier(2, timeout=30)
    run_threads(work(NNsight(net), x, barrier, net), work(NNsight(other), x * 2, barrier, other))
    assert_clean(net)
    assert_clean(other)
    assert_no_trace_state()


@pytest.mark.parametrize("work", [overlapping, overlapping_invokes], ids=["inline", "invokes"])
def test_the_same_model_from_two_threads_at_once(work, net, x):
    """Supported: each forward's hooks act only on that forward's own greenlet."""
    model = NNsight(net)
    barrier = threading.Barrier(2, timeout=30)
    run_threads(work(model, x, barrier, net), work(model, -x, barrier, net))
    assert_exact_afterwards(model, net, x)


def test_language_models_from_two_threads_at_once(tiny_gpt2, tiny_llama):
    """Two models, and then one model twice, with forwards paused mid-way together."""
    cases = {}
    for name, lm in (("gpt2", tiny_gpt2), ("llama", tiny_llama)):
        layer = layers_of(lm._model)[1]
        for prompt in (PROMPT, OTHER_PROMPT):
            cases[name, prompt] = lm_truth(lm, prompt, {"layer": layer})

    def reader(lm, name, prompt, barrier):
        layers = lm.transformer.h if name == "gpt2" else lm.model.layers

        def work():
            for _ in range(5):
                with lm.trace(prompt):
                    hidden = layers[1].output.save()
                    barrier.wait()
                    logits = lm.output.logits.save()
                assert torch.equal(hidden, cases[name, prompt]["layer"])
                assert torch.equal(logits, cases[name, prompt]["logits"])

        return work

    barrier = threading.Barrier(2, timeout=30)
    run_threads(
        reader(tiny_gpt2, "gpt2", PROMPT, barrier), reader(tiny_llama, "llama", PROMPT, barrier)
    )
    run_threads(
        reader(tiny_llama, "llama", PROMPT, barrier),
        reader(tiny_llama, "llama", OTHER_PROMPT, barrier),
    )
    assert_clean(tiny_gpt2._model)
    assert_clean(tiny_llama._model)
    assert_no_trace_state()


# == 9. direct calls of wrapped modules inside the block ==========================================


def test_direct_calls_on_smollm2(smollm2):
    hf = smollm2._model
    with smollm2.trace(PROMPT):
        middle = smollm2.model.layers[5].output
        early_logits = smollm2.lm_head(smollm2.model.norm(middle))  # before the forward gets there
        last = smollm2.model.layers[-1].output
        direct = smollm2.lm_head(smollm2.model.norm(last))
        logits = smollm2.lm_head.output.save()
        result = smollm2.output.logits.save()
    expected = lm_truth(smollm2, PROMPT, {"5": hf.model.layers[5], "head": hf.lm_head})
    with torch.no_grad():
        expected_early = hf.lm_head(hf.model.norm(expected["5"]))
    assert torch.equal(logits, expected["head"]) and torch.equal(result, expected["logits"])
    assert torch.equal(direct, expected["logits"])
    assert torch.equal(early_logits, expected_early)
    assert_clean(hf)


def test_direct_calls_on_a_sequential(seq, x):
    """Direct calls on other inputs must not be taken for the forward's own calls."""
    model = NNsight(seq)
    with hooked({"1": seq[1], "2": seq[2]}) as expected, torch.no_grad():
        seq(x)
    with model.trace(x):
        hidden = model[1].output
        direct = model[2](hidden * 2)  # the module the forward reaches next
        whole = model(x * 3)  # the root itself
        out = model[2].output.save()
        result = model.output.save()
    with torch.no_grad():
        assert torch.equal(direct, seq[2](expected["1"] * 2))
        assert torch.equal(whole, seq(x * 3))
    assert torch.equal(out, expected["2"]) and torch.equal(result, expected["2"])
    with model.trace() as tracer:  # and from a deferred invoke body
        with tracer.invoke(x):
            hidden = model[1].output
            direct_invoke = model[2](hidden * 2)
            out_invoke = model[2].output.save()
    with torch.no_grad():
        assert torch.equal(direct_invoke, seq[2](expected["1"] * 2))
    assert torch.equal(out_invoke, expected["2"])
    assert_clean(seq)
    assert_no_trace_state()


def test_a_block_after_its_own_submodule_through_a_path_the_source_hides(smollm2):
    prompt = "The Eiffel Tower is located in the city of"
    with smollm2.trace(prompt):
        for block in [smollm2.model.layers[3]]:  # bound in the block: invisible to the scan
            mlp = block.mlp.output.save()
            out = block.output.save()
    layer = smollm2._model.model.layers[3]
    with hooked({"mlp": layer.mlp, "out": layer}) as truth, torch.no_grad():
        smollm2._model(**smollm2.tokenizer(prompt, return_tensors="pt"))
    assert torch.equal(mlp, truth["mlp"]) and torch.equal(out, truth["out"])


def test_a_block_after_its_submodule_when_both_paths_are_hidden_from_the_scan(tiny_llama):
    hf = tiny_llama._model
    model = NNsight(hf)  # a plain module wrapper: nothing standardized
    ids = torch.tensor([[5, 6, 7, 8]])
    paths = [("model", "layers", 1, "mlp", "down_proj"), ("model", "layers", 1)]

    def follow(path):  # getattr/index by data: the scan sees no path at all
        envoy = model
        for step in path:
            envoy = envoy[step] if isinstance(step, int) else getattr(envoy, step)
        return envoy

    with model.trace(ids):
        inner = follow(paths[0]).output.save()
        outer = follow(paths[1]).output.save()
    layer = layers_of(hf)[1]
    with hooked({"inner": layer.mlp.down_proj, "outer": layer}) as truth, torch.no_grad():
        hf(ids)
    assert torch.equal(inner, truth["inner"]) and torch.equal(outer, truth["outer"])
    assert_clean(hf)


def test_a_trace_hooks_only_what_its_body_reads_and_the_blocks_around_it(tiny_llama):
    hf = tiny_llama._model
    model = NNsight(hf)
    hooked_during: list[str] = []
    with model.trace(torch.tensor([[5, 6, 7, 8]])):
        model.model.layers[1].mlp.output.save()
        hooked_during += [name for name, m in hf.named_modules() if m._forward_hooks]
    assert sorted(hooked_during) == ["", "model", "model.layers.1", "model.layers.1.mlp"]
    assert_clean(hf)


def test_traces_reuse_the_greenlets_their_forwards_ran_on(seq, x):
    from lenslab.engine import interleaver

    model = NNsight(seq)
    idle = interleaver._idle_workers()
    with model.trace(x):
        model[0].output.save()
    parked = list(idle)
    for _ in range(10):  # plain, failing, stopped and nested traces all hand theirs back
        with model.trace(x):
            model[0].output.clone()
        with pytest.raises(KeyError), model.trace(x):
            model[0].output.save()
            {}["missing"]
        with model.trace(x) as tracer:
            model[0].output.save()
            tracer.stop()
        with model.trace(x):
            first = model[0].output.clone()
            with model.trace(x):
                inner = model[2].output.save()
    assert len(idle) == max(len(parked), 2)  # the nested trace needed a second one
    assert all(any(g is p for g in idle) for p in parked)
    assert torch.equal(first, seq[0](x)) and inner.shape == seq(x).shape
    assert_clean(seq)


def test_a_finished_trace_lets_go_of_its_values_without_the_garbage_collector(tiny_llama):
    import gc
    import weakref

    model = NNsight(tiny_llama._model)
    gc.disable()  # the forward's output and every kept value must go by reference counting
    try:
        with model.trace(torch.tensor([[5, 6, 7, 8]])):
            hidden = model.model.layers[0].output
            kept = weakref.ref(hidden)
            del hidden
            logits = weakref.ref(model.output.logits)
        assert kept() is None and logits() is None
    finally:
        gc.enable()
