"""Call-site names (nnsight's scheme) and the rewritten forward: same results, same lines."""

from __future__ import annotations

import functools
import traceback
from pathlib import Path

import pytest
import torch
from torch import nn

from lenslab import NNsight
from lenslab.engine import callsites
from lenslab.engine.operations import call_site_names

LINES = Path(__file__).read_text().splitlines()


class Base(nn.Module):
    def scale(self, x):
        return x * 2


def make_offset(offset):
    class Toy(Base):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x, fail=False):
            y = self.lin(x)
            z = torch.relu(y).sum(-1, keepdim=True) * y.view(-1, 4).view(y.shape)
            if fail:
                raise ValueError("toy failed")  # FAIL LINE
            return super().scale(z) + offset + torch.nn.functional.gelu(z)

    return Toy


def names(fn):
    """The documented names of the calls (nnsight 0.8's assignment points left out)."""
    return [site.name for site in callsites.rewrite(fn).sites if not site.assignment]


def test_names_follow_nnsight_inner_calls_first_with_a_counter_per_name():
    def f(self, x, fns):
        a = torch.nn.functional.relu(self.proj(x))
        b = x.view(-1).view(3)  # the second view hangs off a call: only its attribute counts
        c = fns[0](a) + fns[1](b)
        return torch.matmul(a, b), self.proj(c)

    assert names(f) == [
        "self_proj_0",
        "torch_nn_functional_relu_0",
        "x_view_0",
        "view_0",
        "unknown_0",
        "unknown_1",
        "torch_matmul_0",
        "self_proj_1",
    ]


def test_calls_in_the_signature_count_after_the_def_line_only():
    def f(self, x=torch.zeros(1),  # noqa: B008
          y=torch.ones(1)) -> torch.Size([1]):  # noqa: B008  # fmt: skip
        return torch.add(x, y)

    assert names(f) == ["torch_ones_0", "torch_add_0", "torch_Size_0"]
    assert callsites.rewrite(f).factory  # the twin compiles, defaults and all


def test_a_transformers_attention_has_nnsights_names():
    from transformers.integrations import sdpa_attention
    from transformers.models.gpt2 import modeling_gpt2

    attention = names(modeling_gpt2.GPT2Attention.forward)
    for name in ("self_c_attn_0", "split_1", "attention_interface_0", "self_c_proj_0"):
        assert name in attention
    inner = names(sdpa_attention.sdpa_attention_forward)
    assert "torch_nn_functional_scaled_dot_product_attention_0" in inner


def test_sites_carry_the_files_line_numbers():
    Toy = make_offset(1.0)
    rewritten = callsites.rewrite(Toy.forward)
    lines = LINES
    for site in rewritten.sites:
        if not site.assignment:
            assert "(" in lines[site.line - 1]  # every call site sits on a line with a call
    by_name = {site.name: site.line for site in rewritten.sites}
    assert "self.lin(x)" in lines[by_name["self_lin_0"] - 1]
    assert "super().scale" in lines[by_name["super_0"] - 1]


@torch.no_grad()
def test_the_rewritten_forward_computes_the_same_keeps_super_closures_and_lines():
    Toy = make_offset(0.5)  # ``offset`` is a closure value of forward
    toy = Toy()
    x = torch.randn(2, 4)
    want = toy(x)
    model = NNsight(toy)
    with model.trace(x):
        z = model.source.torch_relu_0.output.save()
        out = model.output.save()
    assert torch.equal(out, want)
    assert torch.equal(z, torch.relu(toy.lin(x)))
    assert call_site_names(toy) == list(model.source)
    assert "forward" not in toy.__dict__
    with pytest.raises(ValueError, match="toy failed") as caught, model.trace(x, fail=True):
        model.source.self_lin_0.output.save()
    frames = traceback.extract_tb(caught.value.__traceback__)
    line = next(n for n, text in enumerate(LINES, 1) if "# FAIL LINE" in text)
    assert (frames[-1].filename, frames[-1].lineno) == (__file__, line)
    assert "forward" not in toy.__dict__


@torch.no_grad()
def test_printing_an_operation_marks_its_line():
    model = NNsight(make_offset(0.0)())
    shown = repr(model.source.torch_relu_0)
    marked = [line for line in shown.splitlines() if line.lstrip().startswith("-->")]
    assert len(marked) == 1 and "torch.relu(y)" in marked[0]
    listing = repr(model.source)
    assert "super_0" in listing and "torch_nn_functional_gelu_0" in listing


def test_the_cache_holds_one_rewrite_per_function():
    Toy = make_offset(0.0)
    assert callsites.rewrite(Toy.forward) is callsites.rewrite(Toy().forward)
    assert callsites.rewrite(make_offset(1.0).forward) is callsites.rewrite(Toy.forward)


def rename_kwarg(old, new):
    """Like transformers' deprecate_kwarg: the forward still takes the old name."""

    def decorate(fn):
        @functools.wraps(fn)
        def inner(*args, **kwargs):
            if old in kwargs:
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner

    return decorate


def only_in_a_class(fn):
    """Like transformers' auto_docstring, which fails on a function outside its class."""
    if not fn.__qualname__.startswith("Renamed."):
        raise RuntimeError("not a method of Renamed")
    return fn


class Renamed(nn.Module):
    @only_in_a_class
    @rename_kwarg("old_scale", "scale")
    def forward(self, x, scale=1.0):
        return torch.relu(x) * scale


@torch.no_grad()
def test_decorators_apply_to_the_twin_and_one_that_fails_there_is_left_off():
    module = Renamed()
    model = NNsight(module)
    x = torch.randn(2, 3)
    with model.trace(x, old_scale=3.0):
        inner = model.source.torch_relu_0.output.save()
        out = model.output.save()
    assert torch.equal(out, module(x, old_scale=3.0))
    assert torch.equal(inner, torch.relu(x))
    assert "forward" not in module.__dict__
