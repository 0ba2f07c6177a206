"""`zoo demo` from the command line, and the demo's start with no network call."""

from __future__ import annotations

import ipaddress
import sys

import httpx
import pytest

_connections: list[tuple] | None = None  # recording while a list


def _audit(event: str, args: tuple) -> None:
    if _connections is not None and event in ("socket.connect", "socket.getaddrinfo"):
        _connections.append((event, args[1] if event == "socket.connect" else args[0]))


sys.addaudithook(_audit)


def is_local(address) -> bool:
    """Whether a connect or getaddrinfo address stays on this machine."""
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, bytes):
        host = host.decode()
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.startswith("/")  # a unix socket


def test_demo_options(zoo_cli):
    result = zoo_cli("demo --help")
    assert result.code == 0
    for option in ("--weights-dir", "--host", "--port", "--share", "--max-params"):
        assert option in result.out


@pytest.mark.parametrize("given", ["abc", "0", "-5M", "nanM", "infG", ""])
def test_demo_budget_must_be_a_count(zoo_cli, tmp_path, given):
    result = zoo_cli(["demo", "--weights-dir", str(tmp_path), "--max-params", given])
    assert result.code == 1 and result.err.count("\n") == 1
    assert result.err.startswith("error: --max-params must be a count of parameters such as 200M")


def test_demo_budget_counts():
    from zoo.cli.serve import parameter_count

    assert parameter_count("200M", "-") == 200_000_000 and parameter_count("1.5g", "-") == 1.5e9
    assert parameter_count("5000000", "-") == 5_000_000 and parameter_count("12k", "-") == 12_000


def test_demo_needs_its_weights_folder(zoo_cli, tmp_path):
    result = zoo_cli(["demo", "--weights-dir", str(tmp_path / "nowhere")])
    assert result.code == 1
    assert result.err.strip() == f"error: weights folder {tmp_path / 'nowhere'} does not exist"


def test_demo_on_a_busy_port_is_one_line(zoo_cli, lenet_weights, free_port):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        result = zoo_cli(
            ["demo", "--weights-dir", str(lenet_weights.parent), "--port", str(free_port)]
        )
    assert result.code == 1
    assert result.err.startswith(f"error: cannot serve on 127.0.0.1:{free_port} (")
    assert result.err.count("\n") == 1 and "GRADIO" not in result.err


def test_demo_starts_and_serves_without_the_network(registry, tmp_path, lenet_weights, free_port):
    global _connections
    from zoo.demo.app import build_app, serve
    from zoo.demo.shelf import WeightsShelf

    _connections = []
    try:
        app = build_app(
            WeightsShelf(registry, lenet_weights.parent), examples_dir=tmp_path / "examples"
        )
        serve(app, port=free_port, prevent_thread_lock=True)
        try:
            page = httpx.get(f"http://127.0.0.1:{free_port}/")
            assert page.status_code == 200 and "zoo demo" in page.text
        finally:
            app.close()
        made = list(_connections)
    finally:
        _connections = None
    remote = [(event, address) for event, address in made if not is_local(address)]
    assert remote == []
    assert any(event == "socket.connect" for event, _ in made)  # the recording works


def test_the_page_is_built_before_any_weights_file_is_checked(lenet_weights, tmp_path):
    """The weights check runs its model on the meta device, whose first use imports
    torch._dynamo (a second here): the page is built without it, and its load event offers
    the checked files."""
    import subprocess

    code = (
        "import sys\n"
        "from zoo.demo.app import build_app\n"
        "from zoo.demo.shelf import WeightsShelf\n"
        "from zoo.registry import get_registry\n"
        f"shelf = WeightsShelf(get_registry(), {str(lenet_weights.parent)!r})\n"
        f"build_app(shelf, examples_dir={str(tmp_path)!r})\n"
        "print('torch._dynamo' in sys.modules)\n"
        "shelf.warm()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.split() == ["False", "True"], done.stderr[-2000:]


def test_zoo_demo_serves_its_page_and_stops_on_ctrl_c(lenet_weights, free_port, tmp_path):
    """The real command: the page answers (with the budget given) while the default model
    loads behind it, and Ctrl-C (SIGINT) ends the process."""
    import os
    import signal
    import subprocess
    import time

    command = [sys.executable, "-m", "zoo", "demo", "--weights-dir", str(lenet_weights.parent)]
    options = ["--port", str(free_port), "--max-params", "5M"]
    log = tmp_path / "stderr.txt"  # a file, not a pipe: a full pipe would block the process
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}  # SIGABRT prints every thread's stack

    def said() -> str:
        return log.read_text()[-4000:]

    def interruptible() -> None:  # a shell's background job starts with SIGINT ignored
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    with log.open("w") as stderr:
        process = subprocess.Popen(
            [*command, *options], stderr=stderr, env=env, preexec_fn=interruptible
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, said()
            try:
                page = httpx.get(f"http://127.0.0.1:{free_port}/")
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "no page within 120 s"
                time.sleep(0.1)
        assert page.status_code == 200 and "zoo demo" in page.text
        assert "up to 5M parameters" in page.text  # the Inspect tab's budget is the option's
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGABRT)
            process.wait()
            raise AssertionError(f"still running 60 s after Ctrl-C:\n{said()}") from None
        assert code in (0, 130), said()  # 130: interrupted while the model loaded
    finally:
        process.kill()
        process.wait()


@pytest.mark.parametrize("address", [("127.0.0.1", 80), ("::1", 80, 0, 0), "localhost", b"::1"])
def test_is_local(address):
    assert is_local(address)
    assert not is_local(("93.184.216.34", 80))
