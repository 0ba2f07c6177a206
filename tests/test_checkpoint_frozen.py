"""A frozen backbone's checkpoint holds only what trains, plus a checksum of the rest, which a
resumed run rebuilds; a rebuilt backbone that differs is refused."""

from __future__ import annotations

import torch
from safetensors.torch import load_file, save_file

from tests.datafiles import write_mnist
from zoo.training.checkpoint import FILENAME, load_checkpoint


def test_head_checkpoint_holds_the_head_and_resumes_to_the_same_weights(
    zoo_cli, registry, tmp_path
):
    write_mnist(tmp_path / "data", train=40, test=20)
    torch.manual_seed(5)
    start = tmp_path / "start.safetensors"
    save_file(registry.build(registry.model("vgg16"), num_classes=10).state_dict(), start)
    runs = tmp_path / "runs"
    args = (
        f"train vgg16 -d mnist --data-dir {tmp_path / 'data'} --epochs 2 --batch-size 8 "
        f"--image-size 32 --threads 1 -q --runs-dir {runs} --run-name v --init-from {start}"
    )
    assert zoo_cli(f"{args} --out {tmp_path / 'first'}").code == 0
    checkpoint = runs / "v" / FILENAME
    saved = load_checkpoint(checkpoint, "vgg16")
    assert saved["state_dict"] and all(k.startswith("classifier.") for k in saved["state_dict"])
    # The head, its Adam moments and the best epoch's head (9.4 MB); the whole model is 58 MB.
    assert checkpoint.stat().st_size < 45e6

    # Resuming the finished run rebuilds the frozen features and gives the same weights.
    result = zoo_cli(f"{args} --out {tmp_path / 'again'} --resume")
    assert result.code == 0, result.err
    first, again = (
        load_file(tmp_path / "first/v.safetensors"),
        load_file(tmp_path / "again/v.safetensors"),
    )
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)

    # Another backbone under the same --init-from name: refused, nothing written.
    torch.manual_seed(6)
    save_file(registry.build(registry.model("vgg16"), num_classes=10).state_dict(), start)
    result = zoo_cli(f"{args} --out {tmp_path / 'third'} --resume")
    assert result.code == 1 and "differs from the one it was trained from" in result.err
    assert result.err.count("\n") == 1 and not list(tmp_path.glob("third/*"))
