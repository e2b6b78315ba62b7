"""The comm target in a real ipykernel: answered over a subshell while a cell runs."""

from __future__ import annotations

import time
import uuid
from types import SimpleNamespace

import pytest

from lenslab.comms import TARGET_NAME, register
from lenslab.comms.protocol import build_request, parse_reply

from .test_sidebar import FakeInspector, FakeModel


class FakeComm:
    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.handler = None

    def on_msg(self, handler):
        self.handler = handler

    def send(self, data):
        self.sent.append(data)


def fake_shell():
    targets: dict = {}
    events: dict = {}
    manager = SimpleNamespace(register_target=targets.__setitem__)
    return SimpleNamespace(
        kernel=SimpleNamespace(comm_manager=manager),
        user_ns={"model": FakeModel({})},
        events=SimpleNamespace(register=lambda name, fn: events.setdefault(name, []).append(fn)),
        targets=targets,
        handlers=events,
    )


def test_register_once_per_shell_and_answer_on_the_comm():
    shell = fake_shell()
    sidebar = register(shell, FakeInspector(), version="1")
    assert register(shell, FakeInspector()) is sidebar
    assert list(shell.targets) == [TARGET_NAME]
    assert [len(v) for v in shell.handlers.values()] == [1, 1]
    comm = FakeComm()
    shell.targets[TARGET_NAME](comm, {"content": {"data": build_request("a", "hello")}})
    comm.handler({"content": {"data": build_request("b", "models")}})
    replies = [parse_reply(m) for m in comm.sent]
    assert [r["id"] for r in replies] == ["a", "b"]
    assert replies[1]["result"][0]["name"] == "model"


def test_outside_a_kernel_nothing_is_registered():
    assert register(SimpleNamespace(user_ns={}), FakeInspector()) is None


@pytest.fixture(scope="module")
def kernel():
    from jupyter_client.manager import KernelManager

    manager = KernelManager(kernel_name="python3")
    manager.start_kernel(env={"HF_HUB_OFFLINE": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"})
    client = manager.blocking_client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    yield client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def run(client, code: str, timeout: float = 60) -> None:
    reply = client.execute_interactive(code, timeout=timeout, output_hook=lambda msg: None)
    assert reply["content"]["status"] == "ok", reply["content"]


def comm_reply(client, request_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = client.get_iopub_msg(timeout=max(deadline - time.monotonic(), 0.01))
        data = msg["content"].get("data")
        is_comm = msg["msg_type"] == "comm_msg" and isinstance(data, dict)
        if is_comm and data.get("id") == request_id:
            return parse_reply(data)
    raise TimeoutError(request_id)


def test_a_subshell_comm_answers_while_a_long_cell_runs(kernel):
    run(kernel, "import time, torch\nfrom lenslab import NNsight\n"
                "net = NNsight(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()))")
    kernel.control_channel.send(kernel.session.msg("create_subshell_request", {}))
    subshell = kernel.control_channel.get_msg(timeout=10)["content"]["subshell_id"]

    def send(msg_type: str, content: dict) -> None:
        msg = kernel.session.msg(msg_type, content)
        msg["header"]["subshell_id"] = subshell
        kernel.shell_channel.send(msg)

    comm_id = uuid.uuid4().hex
    kernel.execute("time.sleep(8)")  # the main shell is busy from here on
    time.sleep(0.5)
    started = time.monotonic()
    send("comm_open", {"comm_id": comm_id, "target_name": TARGET_NAME,
                       "data": build_request("open", "hello")})
    hello = comm_reply(kernel, "open", timeout=5)
    assert hello["result"]["busy"] is True
    send("comm_msg", {"comm_id": comm_id, "data": build_request("m", "models")})
    models = comm_reply(kernel, "m", timeout=5)["result"]
    assert time.monotonic() - started < 5, "answered only after the long cell"
    assert [(m["name"], m["cls"], m["params"]) for m in models] == [("net", "Sequential", 15)]

    kernel.get_shell_msg(timeout=20)  # the long cell's reply
    run(kernel, "with net.trace(torch.ones(1, 4)):\n    out = net[0].output.save()")
    send("comm_msg", {"comm_id": comm_id, "data": build_request("s", "saved")})
    saved = comm_reply(kernel, "s", timeout=10)["result"]
    assert saved["trace"] >= 1
    assert [(v["name"], v["shape"], v["dtype"]) for v in saved["values"]] == [
        ("out", [1, 3], "float32")
    ]
    send("comm_msg", {"comm_id": comm_id, "data": build_request("c", "children", model="net",
                                                                    path=[])})
    children = comm_reply(kernel, "c", timeout=10)["result"]
    modules = [(c["key"], c["cls"]) for c in children if c["kind"] == "module"]
    assert modules == [("0", "Linear"), ("1", "ReLU")]
