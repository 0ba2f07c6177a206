"""Where downloaded weights are kept, and whether a download could start, found without torch.

`torch_hub_file` is the path torch.hub (and torchvision) keeps a checkpoint at, `hf_hub_file`
the Hugging Face cache's copy of a repository file (timm's weights; `huggingface_hub` resolves
it, imported only when the cache holds the repository at all, as importing it costs `zoo list`
a third of its time), and `reachable` answers
within `PROBE_SECONDS` whether a URL's host takes connections, so a `--pretrained` that cannot
download fails at once instead of after a library's retries.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

PROBE_SECONDS = 3.0


def torch_hub_file(name: str) -> Path:
    """`$TORCH_HOME/hub/checkpoints/name`, where torch.hub.get_dir() puts it (TORCH_HOME
    defaults to $XDG_CACHE_HOME/torch, ~/.cache/torch)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or "~/.cache", "torch"
    )
    return Path(home).expanduser() / "hub" / "checkpoints" / name


def hf_hub_cache() -> Path:
    """The Hugging Face cache's folder, found as `huggingface_hub.constants` finds it:
    $HF_HUB_CACHE, else the older $HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub (HF_HOME defaults
    to $XDG_CACHE_HOME/huggingface, ~/.cache/huggingface)."""
    env = os.environ
    home = env.get("HF_HOME", os.path.join(env.get("XDG_CACHE_HOME", "~/.cache"), "huggingface"))
    hub = os.path.join(os.path.expandvars(os.path.expanduser(home)), "hub")
    cache = env.get("HF_HUB_CACHE", env.get("HUGGINGFACE_HUB_CACHE", hub))
    return Path(os.path.expandvars(os.path.expanduser(cache)))


def hf_hub_file(repo: str, names: tuple[str, ...]) -> Path | None:
    """The first of `names` the Hugging Face cache holds for model repository `repo`, or None."""
    if not (hf_hub_cache() / f"models--{repo.replace('/', '--')}").is_dir():
        return None  # as try_to_load_from_cache answers then, without importing it
    from huggingface_hub import try_to_load_from_cache

    for name in names:
        found = try_to_load_from_cache(repo, name)
        if isinstance(found, str):
            return Path(found)
    return None


def reachable(url: str, timeout: float = PROBE_SECONDS) -> bool:
    """Whether `url`'s host resolves and accepts a TCP connection within `timeout` seconds
    (name resolution included, which a socket timeout alone does not bound)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])
