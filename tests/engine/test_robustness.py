"""The with-block where researchers write it, and what happens when things go wrong.

Contexts: functions, methods, loops, exec, one-line bodies, try, real Jupyter kernels (plain and
%%time cells). Failures: exceptions keep their type and line, pdb stops at the user's line,
clear errors for wrong paths, unused modules and bad edits, and a clean model afterwards, even
after a KeyboardInterrupt. Threads.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import traceback

import pytest
import torch
from torch import nn

from lenslab import (
    EditError,
    LensWarning,
    ModuleNotCalledError,
    ModulePathError,
    NNsight,
    OutOfOrderError,
    TraceStateError,
)

from ..conftest import assert_clean, hooked

THIS_FILE = __file__


class Unused(nn.Module):
    """A network with a submodule its forward never calls, and a switch to interrupt it."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
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
    return torch.randn(2, 4)


def truth(net, x):
    with torch.no_grad():
        hidden = torch.relu(net.first(x))
        return net.first(x), net.second(hidden)


def assert_exact_afterwards(model, net, x):
    """No hooks left; a new trace and a raw forward both give exact values."""
    assert_clean(net)
    _, out = truth(net, x)
    with model.trace(x):
        again = model.first.output.save()
    assert torch.equal(again, net.first(x))
    assert torch.equal(net(x), out)


# -- where the block is written -------------------------------------------------------------------


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


def test_in_a_function_a_method_and_a_loop(net, x):
    model = NNsight(net)
    first, out = truth(net, x)
    assert torch.equal(read_first(model, x), first)
    assert torch.equal(Probe(model).read(x), out)
    for scale in (1.0, 2.0, 3.0):
        with model.trace(x * scale):
            value = model.first.output.save()
        assert torch.equal(value, net.first(x * scale))


def test_one_line_body_and_a_body_that_begins_with_try(net, x):
    model = NNsight(net)
    first, out = truth(net, x)
    with model.trace(x): one = model.first.output.save()  # noqa: E701  # fmt: skip
    assert torch.equal(one, first)
    with model.trace(x):
        try:
            two = model.second.output.save()
        except ModuleNotCalledError:
            raise
    assert torch.equal(two, out)


def test_exec_with_and_without_a_namespace(net, x):
    model = NNsight(net)
    first, _ = truth(net, x)
    code = "with model.trace(x):\n    value = model.first.output.save()\n"
    namespace = {"model": model, "x": x}
    exec(code, namespace)
    assert torch.equal(namespace["value"], first)
    scope = {"model": model, "x": x}
    exec(code, scope, scope)
    assert torch.equal(scope["value"], first)


def test_exec_with_invokes_runs_each_invoke_alone_with_one_warning(net, x, monkeypatch):
    import lenslab.engine.tracer as tracer_module

    monkeypatch.setattr(tracer_module, "_warned_no_source", False)
    model = NNsight(net)
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
    with pytest.warns(LensWarning, match="own forward pass"):
        exec(code, namespace)
    torch.testing.assert_close(torch.cat([namespace["a"], namespace["b"]]), net.first(x))
    assert_clean(net)


# -- real Jupyter kernels -------------------------------------------------------------------------


def run_notebook(cells: list[str]) -> list[str]:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(textwrap.dedent(cell)) for cell in cells]
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": "."}}
    )
    client.execute()
    return [
        "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        for cell in notebook.cells
    ]


def test_in_a_jupyter_kernel_plain_cells_time_cells_and_invokes():
    setup = """
        import sys, torch, torch.nn as nn
        from lenslab import NNsight
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
        model = NNsight(net)
        x = torch.randn(3, 4)
        print(sys.executable)
    """
    plain = """
        with model.trace(x):
            h = model[0].output.save()
            model[1].output[:] = 0
            out = model.output.save()
        print(torch.equal(h, net[0](x)), torch.equal(out, net[2].bias.expand(3, 2)))
    """
    timed = """
        %%time
        with model.trace(x):
            t = model[2].output.save()
        print("timed", torch.equal(t, net(x)))
    """
    invokes = """
        calls = []
        handle = net.register_forward_pre_hook(lambda m, a: calls.append(1))
        with model.trace() as tracer:
            with tracer.invoke(x[:1]):
                a = model[0].output.save()
            with tracer.invoke(x[1:]):
                b = model[0].output.save()
        handle.remove()
        print("invokes", len(calls), torch.equal(torch.cat([a, b]), net[0](x)))
    """
    outputs = run_notebook([setup, plain, timed, invokes])
    assert outputs[0].strip() == sys.executable
    assert outputs[1].strip() == "True True"
    assert outputs[2].splitlines()[0] == "timed True"
    assert outputs[3].strip() == "invokes 1 True"


# -- exceptions and the debugger ------------------------------------------------------------------


def test_an_exception_keeps_its_type_and_points_at_the_users_line(net, x):
    model = NNsight(net)
    with pytest.raises(ZeroDivisionError) as caught:
        with model.trace(x):
            model.first.output.save()
            1 / 0  # the user's line  # noqa: B018
    last = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert (last.filename, last.line) == (THIS_FILE, "1 / 0  # the user's line  # noqa: B018")
    assert_exact_afterwards(model, net, x)


def test_an_exception_in_an_invoke_points_at_the_users_line(net, x):
    model = NNsight(net)
    with pytest.raises(KeyError) as caught:
        with model.trace() as tracer:
            with tracer.invoke(x):
                model.first.output.save()
                {}["missing"]  # the user's line in an invoke
    last = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert last.filename == THIS_FILE and "the user's line in an invoke" in last.line
    assert_exact_afterwards(model, net, x)


def test_breakpoint_stops_at_the_users_line(tmp_path):
    script = tmp_path / "debug_me.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch, torch.nn as nn
            from lenslab import NNsight
            model = NNsight(nn.Sequential(nn.Linear(3, 5)))
            with model.trace(torch.ones(2, 3)):
                hidden = model[0].output
                breakpoint()
                done = True
            print("finished", done)
            """
        )
    )
    result = subprocess.run(
        [sys.executable, str(script)],
        input="p hidden.shape\nc\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONBREAKPOINT": "pdb.set_trace", "PATH": "/usr/bin:/bin"},
    )
    assert f"{script}(8)<module>()" in result.stdout, result.stdout + result.stderr
    assert "-> done = True" in result.stdout
    assert "torch.Size([2, 5])" in result.stdout
    assert "finished True" in result.stdout


# -- order of reads and edits ---------------------------------------------------------------------


def test_reads_in_any_order(smollm2):
    prompt = "The Eiffel Tower is located in the city of"
    with smollm2.trace(prompt):
        layer = smollm2.model.layers[5].output.save()
        attention = smollm2.model.layers[5].self_attn.output.save()  # runs inside layer 5
        early = smollm2.model.layers[2].output.save()  # long passed
    with torch.no_grad():
        states = smollm2._model(
            **smollm2.tokenizer(prompt, return_tensors="pt"), output_hidden_states=True
        ).hidden_states
    assert torch.equal(layer, states[6]) and torch.equal(early, states[3])
    captured = {}
    module = smollm2._model.model.layers[5].self_attn
    handle = module.register_forward_hook(lambda m, a, o: captured.setdefault("a", o))
    with torch.no_grad():
        smollm2._model(**smollm2.tokenizer(prompt, return_tensors="pt"))
    handle.remove()
    assert torch.equal(attention[0], captured["a"][0])


def test_writing_a_passed_module_fails_on_that_line(net, x):
    model = NNsight(net)
    lines = []
    with pytest.raises(OutOfOrderError, match=r"cannot set model.first.output.*model.second"):
        with model.trace(x):
            model.second.output.save()
            lines.append("before")
            model.first.output = torch.zeros(2, 4)
            lines.append("after")  # never reached: raised right away
    assert lines == ["before"]
    assert_exact_afterwards(model, net, x)


def test_editing_a_passed_value_in_place_is_caught(net, x):
    model = NNsight(net)
    with pytest.raises(OutOfOrderError, match=r"model\.first\.output was edited in place after"):
        with model.trace(x):
            first = model.first.output
            model.second.output.save()
            first[:] = 0
            model.output.save()
    assert_exact_afterwards(model, net, x)


# -- bad input ------------------------------------------------------------------------------------


def test_wrong_module_path_names_the_children(smollm2):
    with pytest.raises(AttributeError, match=r"embed_tokens, layers, norm, rotary_emb") as caught:
        smollm2.model.layer  # noqa: B018
    assert "Did you mean model.model.layers?" in str(caught.value)
    assert isinstance(caught.value, ModulePathError)
    with pytest.raises(IndexError, match=r"holds 30 modules \(indices 0-29\)"):
        smollm2.model.layers[30]


def test_a_module_the_forward_never_calls(net, x):
    model = NNsight(net)
    with pytest.raises(ModuleNotCalledError, match=r"model.spare.output was never produced"):
        with model.trace(x):
            model.spare.output.save()
    assert_exact_afterwards(model, net, x)


def test_replacement_of_the_wrong_shape_or_dtype(net, x):
    model = NNsight(net)
    with pytest.raises(EditError, match=r"model.first.output.*shape \[2, 3\].*shape \[2, 4\]"):
        with model.trace(x):
            model.first.output = torch.zeros(2, 3)
    with pytest.raises(EditError, match=r"dtype torch.float64"):
        with model.trace(x):
            model.first.output = torch.zeros(2, 4, dtype=torch.float64)
    assert_exact_afterwards(model, net, x)


def test_values_outside_a_trace(net):
    model = NNsight(net)
    with pytest.raises(TraceStateError, match=r"model.first.output is only available inside"):
        model.first.output  # noqa: B018


# -- interrupts -----------------------------------------------------------------------------------


def test_keyboard_interrupt_in_the_body_leaves_the_model_clean(net, x):
    model = NNsight(net)
    with pytest.raises(KeyboardInterrupt):
        with model.trace(x):
            model.first.output.save()
            raise KeyboardInterrupt
    assert_exact_afterwards(model, net, x)


def test_keyboard_interrupt_in_the_forward_leaves_the_model_clean(net, x):
    model = NNsight(net)
    net.interrupt = True
    with pytest.raises(KeyboardInterrupt):
        with model.trace(x):
            model.first.output.save()
            model.second.output.save()
    net.interrupt = False
    assert_exact_afterwards(model, net, x)


# -- threads --------------------------------------------------------------------------------------


def test_traces_from_two_threads_at_once(net, x):
    """Two models, then one model, traced from two threads with overlapping bodies."""
    other = Unused()
    with torch.no_grad():
        other.first.weight.mul_(-1)
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, bool] = {}

    def work(name, model, network):
        for _ in range(20):
            with model.trace(x):
                first = model.first.output.clone().save()
                barrier.wait()
                model.first.output[:] = 0
                out = model.output.save()
        results[name] = torch.equal(first, network.first(x)) and torch.equal(
            out, network.second(torch.zeros(2, 4))
        )

    for pair in ((NNsight(net), NNsight(other)), (NNsight(net), NNsight(net))):
        threads = [
            threading.Thread(target=work, args=(str(i), model, model._module))
            for i, model in enumerate(pair)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
        assert results == {"0": True, "1": True}
        results.clear()
    assert_clean(net) and assert_clean(other)


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
