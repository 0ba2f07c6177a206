"""The on-disk cache of folder and Hugging Face datasets: prepared once, reused, rebuilt when a
file changes, shared by torchrun processes, read a batch at a time; photo augmentation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from tests.datafiles import pattern_images, write_image_folder
from zoo.data.augment import photo_augment
from zoo.data.sources import load_dataset
from zoo.data.stream import MappedImages, batches
from zoo.weights import read_meta

ROOT = Path(__file__).resolve().parent.parent


def cached(data: Path) -> list[Path]:
    return sorted(p for p in (data / "cache").iterdir() if not p.name.startswith("."))


def test_folder_is_decoded_once_and_again_when_a_file_changes(registry, tmp_path, capfd):
    pics = write_image_folder(tmp_path / "pics", ["a", "b"], per_class=6)
    data = tmp_path / "data"
    _, first = load_dataset(registry, f"folder:{pics}", 16, data, workers=2)
    assert "prepared folder-pics (12 images)" in capfd.readouterr().err
    _, again = load_dataset(registry, f"folder:{pics}", 16, data, workers=2)
    assert "prepared" not in capfd.readouterr().err and len(cached(data)) == 1
    assert isinstance(again.train_images, MappedImages) and again.photos
    assert torch.equal(first.train_images.read(), again.train_images.read())
    assert torch.equal(first.test_labels, again.test_labels)

    Image.new("RGB", (40, 40), "white").save(pics / "a" / "0.png")  # same name, new pixels
    _, changed = load_dataset(registry, f"folder:{pics}", 16, data, workers=0)
    assert "prepared folder-pics" in capfd.readouterr().err and len(cached(data)) == 2
    pixels = [torch.cat([d.train_images.read(), d.test_images.read()]) for d in (first, changed)]
    assert not torch.equal(*pixels)
    _, larger = load_dataset(registry, f"folder:{pics}", 16, data, augment=True)
    assert larger.train_images.shape[1:] == (3, 19, 19) and len(cached(data)) == 3


def test_mapped_images_match_the_decoded_ones_and_stream_in_batches(registry, tmp_path):
    pics = write_image_folder(tmp_path / "pics", ["a", "b", "c"], per_class=5)
    _, data = load_dataset(registry, f"folder:{pics}", 24, tmp_path / "data", workers=0)
    images = data.train_images
    everything = images.read()
    assert everything.shape == (12, 3, 24, 24) and everything.dtype == torch.uint8
    assert torch.equal(images[[5, 0]].read(), everything[[5, 0]])
    order = torch.randperm(len(images))
    got = list(batches(images, order, 5, torch.device("cpu"), start=1))
    assert [len(index) for index, _ in got] == [5, 2]
    for index, x in got:
        assert torch.equal(x, everything[index])
    stream = batches(images, order, 2, torch.device("cpu"))
    next(stream)
    stream.close()  # stops its reading thread
    data.limit(6)  # a subset of the mapped rows, still unread
    assert len(data.limit(6).train_images) == 6


def test_unreadable_files_are_skipped_and_counted_every_time(registry, tmp_path):
    pics = write_image_folder(tmp_path / "pics", ["a", "b"], per_class=6)
    (pics / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    for _ in range(2):  # decoding, then from the cache
        with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\) in .*broken.jpg"):
            _, data = load_dataset(registry, f"folder:{pics}", 16, tmp_path / "data")
        assert len(data.train_labels) + len(data.test_labels) == 12


def hf_split(n: int, seed: int) -> datasets.Dataset:
    labels = np.arange(n) % 2
    pictures = [Image.fromarray(a) for a in pattern_images(labels, 40, 3, seed)]
    features = datasets.Features({"picture": datasets.Image(), "kind": datasets.Value("string")})
    names = ["cat", "dog"]
    return datasets.Dataset.from_dict(
        {"picture": pictures, "kind": [names[i] for i in labels]}, features=features
    )


def test_hf_datasets_from_save_to_disk_and_data_files_train(zoo_cli, registry, tmp_path):
    saved = tmp_path / "saved"
    datasets.DatasetDict(train=hf_split(20, 1), test=hf_split(8, 2)).save_to_disk(str(saved))
    args = "--epochs 6 --batch-size 4 --workers 0 -q"
    result = zoo_cli(f"train cifar-cnn -d hf:{saved} {args} --out {tmp_path} --run-name s")
    assert result.code == 0, result.err
    meta = read_meta(tmp_path / "s.safetensors")
    assert meta["classes"] == ["cat", "dog"] and meta["metrics"]["test_images"] == 8
    assert meta["metrics"]["test_accuracy"] >= 0.75
    assert not [p for p in saved.rglob("cache-*")]  # nothing written beside the user's files

    files = tmp_path / "files"
    hf_split(20, 3).to_parquet(str(files / "train.parquet"))
    _, data = load_dataset(registry, f"hf:{files}", 16, tmp_path / "data")
    assert data.classes == ["cat", "dog"] and (len(data.train_labels), len(data.test_labels)) == (
        16,
        4,
    )  # no test split: 80/20 as folders


def test_hf_datasets_without_images_or_offline_are_one_line_errors(zoo_cli, tmp_path):
    plain = tmp_path / "plain"
    datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}).save_to_disk(str(plain))
    result = zoo_cli(f"train lenet -d hf:{plain} --out {tmp_path}")
    assert result.code == 1
    assert f"error: hf:{plain} has no image column; its columns: text, label" in result.err
    result = zoo_cli(f"train lenet -d hf:someone/nothing-cached --out {tmp_path}")
    assert result.code == 1 and "cannot load Hugging Face dataset 'someone/nothing-cached'" in (
        result.err
    )
    assert "Traceback" not in result.err and not list(tmp_path.glob("*.safetensors"))


def test_zoo_datasets_prepare_then_train_and_eval_read_the_cache(zoo_cli, tmp_path):
    pics = write_image_folder(tmp_path / "pics", ["a", "b"], per_class=8)
    data = f"--data-dir {tmp_path / 'data'}"
    result = zoo_cli(f"datasets prepare folder:{pics} --model cifar-cnn {data} -q")
    assert result.code == 0 and "16 images ready at 32 px" in result.out, result.err
    listing = json.loads(zoo_cli(f"datasets --json {data}").out)["cache"]
    assert [(e["dataset"], e["rows"], e["size"]) for e in listing] == [(f"folder:{pics}", 16, 32)]
    assert listing[0]["bytes"] > 16 * 3 * 32 * 32
    assert "prepared in" in zoo_cli(f"datasets {data}").out

    run = f"train cifar-cnn -d folder:{pics} {data} --epochs 2 -q --out {tmp_path}"
    result = zoo_cli(run)
    assert result.code == 0 and "prepared" not in result.err, result.err
    weights = next(tmp_path.glob("cifar-cnn-folder-*.safetensors"))
    result = zoo_cli(f"eval {weights} {data} --json")
    assert result.code == 0 and "prepared" not in result.err, result.err
    report = json.loads(result.out)
    assert report["images"] == read_meta(weights)["metrics"]["test_images"] == 3

    for bad, message in (
        (f"datasets prepare folder:{pics} {data}", "give --model NAME or --image-size N"),
        ("datasets prepare digits --image-size 8", "digits needs no preparing"),
        (f"train lenet --trivial-augment --out {tmp_path}", "--trivial-augment needs --augment"),
        (
            f"train lenet --augment --trivial-augment --out {tmp_path}",
            "--trivial-augment is for photo datasets, not digits",
        ),
    ):
        result = zoo_cli(bad)
        assert result.code == 1 and f"error: {message}" in result.err, (bad, result.err)


def test_photo_augment_crops_flips_and_is_reproducible():
    x = torch.arange(2 * 3 * 20 * 20, dtype=torch.float).view(2, 3, 20, 20) % 256
    x = x.to(torch.uint8).repeat(8, 1, 1, 1)
    out = photo_augment(x, 16, torch.Generator().manual_seed(0), flip=True, trivial=True)
    assert out.shape == (16, 3, 16, 16) and out.dtype == torch.uint8
    again = photo_augment(x, 16, torch.Generator().manual_seed(0), flip=True, trivial=True)
    assert torch.equal(out, again)
    other = photo_augment(x, 16, torch.Generator().manual_seed(1), flip=True, trivial=True)
    assert not torch.equal(out, other)
    assert len({tuple(image.flatten().tolist()) for image in out}) > 2  # each image its own


# `zoo train` under torchrun, which then names the threads each process has left: gloo's must
# have ended, as one that frees a tensor while the interpreter exits aborts the process.
TRAIN_AND_COUNT_THREADS = """
import os, sys
from zoo.cli import main
try:
    main()
finally:
    tasks = os.listdir("/proc/self/task")
    names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in tasks)
    sys.stderr.write(f"threads left: {names}\\n")  # one write: the two ranks share the pipe
"""


def test_two_torchrun_processes_share_one_prepared_cache(registry, tmp_path):
    # `registry` has written the timm catalog: `zoo train` then imports no timm (nor, with it,
    # torch._dynamo) before it joins the process group
    pics = write_image_folder(tmp_path / "pics", ["a", "b"], per_class=10)
    script = tmp_path / "train.py"
    script.write_text(TRAIN_AND_COUNT_THREADS)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ZOO_DATA": str(tmp_path / "data")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
    args = ["2", str(script), "train", "cifar-cnn", "-d", f"folder:{pics}", "--epochs", "3"]
    args += ["--device", "cpu", "--workers", "0", "--out", str(tmp_path), "-q"]
    result = subprocess.run(
        [*command, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("prepared folder-pics (20 images)") == 1  # one decode
    assert len(cached(tmp_path / "data")) == 1
    assert read_meta(next(tmp_path.glob("*.safetensors")))["metrics"]["test_images"] == 4
    left = [line for line in result.stderr.splitlines() if line.startswith("threads left:")]
    assert len(left) == 2 and not any("gloo" in line for line in left), left


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "emptied", "cut-manifest", "fifo"])
def test_a_damaged_cache_is_set_aside_and_prepared_again(registry, tmp_path, damage):
    pics = write_image_folder(tmp_path / "pics", ["a", "b"], per_class=6)
    data = tmp_path / "data"
    _, first = load_dataset(registry, f"folder:{pics}", 16, data)
    pixels = first.train_images.read()  # before its mapped file is cut short under it
    del first
    (folder,) = cached(data)
    arrow = next(folder.glob("*.arrow"))
    if damage == "truncated":
        arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2])
    elif damage == "zeroed":
        arrow.write_bytes(bytes(arrow.stat().st_size))
    elif damage == "emptied":
        arrow.write_bytes(b"")
    elif damage == "cut-manifest":
        manifest = folder / "manifest.json"
        manifest.write_text(manifest.read_text()[:40])
    else:  # a FIFO where an Arrow file was: mapping it would hang
        arrow.unlink()
        os.mkfifo(arrow)
    with pytest.warns(UserWarning, match=rf"the prepared cache {folder} is damaged \(.+\): "):
        _, healed = load_dataset(registry, f"folder:{pics}", 16, data)
    assert torch.equal(healed.train_images.read(), pixels)
    assert [p.name for p in (data / "cache").iterdir()] == [folder.name]  # nothing left aside


def _folder_with_a_loop_and_a_fifo(root: Path) -> Path:
    pics = write_image_folder(root / "pics", ["a", "b"], per_class=10)
    (pics / "a" / "loop").symlink_to(pics)  # back into the tree: 20 images became 420
    (pics / "b" / "outside").symlink_to(root / "elsewhere", target_is_directory=True)
    write_image_folder(root / "elsewhere", ["x"], per_class=3)
    os.mkfifo(pics / "b" / "pipe.png")  # opening it for reading would wait for ever
    (pics / "a" / "again.png").symlink_to(pics / "a" / "0.png")  # the same file twice
    return pics


def test_a_folder_is_walked_without_following_links_or_opening_fifos(registry, tmp_path):
    pics = _folder_with_a_loop_and_a_fifo(tmp_path)
    with pytest.warns(UserWarning) as warned:
        _, data = load_dataset(registry, f"folder:{pics}", 16, tmp_path / "data")
    assert len(data.train_labels) + len(data.test_labels) == 20
    message = next(str(w.message) for w in warned if "left out" in str(w.message))
    assert message == (
        f"{pics}: left out 2 folder symlink(s), not followed; 1 entries that are not regular "
        "files; 1 file(s) reached twice, kept once"
    )


def test_zoo_predict_walks_folders_the_same_way(zoo_cli, lenet_weights, tmp_path):
    pics = _folder_with_a_loop_and_a_fifo(tmp_path)
    result = zoo_cli(["predict", str(lenet_weights), str(pics), "--json"])
    assert result.code == 0, result.err
    assert len(result.out.splitlines()) == 20 and "left out 2 folder symlink(s)" in result.err


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                found.append(int(entry.name))
        except (OSError, IndexError):
            continue
    return found


def _running(pid: int) -> bool:
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_9_during_prepare_leaves_no_worker_and_the_next_run_no_partial_folder(tmp_path):
    """Decoding workers die with their parent (PR_SET_PDEATHSIG); the `.partial` folder a
    dead process left is removed by the next prepare."""
    pics = tmp_path / "pics"
    big = np.add.outer(np.arange(1500), np.arange(1500)).astype(np.uint8)
    photo = tmp_path / "photo.jpg"
    Image.fromarray(big).convert("RGB").save(photo, quality=90)
    for label in ("a", "b"):
        (pics / label).mkdir(parents=True)
        for i in range(60):  # slow enough to decode that the kill lands mid-way
            (pics / label / f"{i}.jpg").write_bytes(photo.read_bytes())
    env = {**os.environ, "ZOO_DATA": str(tmp_path / "data"), "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "zoo", "datasets", "prepare", f"folder:{pics}"]
    args += ["--image-size", "32", "--workers", "2", "-q"]
    child = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
    cache = tmp_path / "data" / "cache"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if len(_children(child.pid)) >= 2 and list(cache.glob(".*.partial")):
            break
        time.sleep(0.02)
    workers = _children(child.pid)
    child.kill()
    child.wait()
    assert len(workers) >= 2 and list(cache.glob(".*.partial")), "killed too late"
    deadline = time.monotonic() + 10
    while any(map(_running, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(map(_running, workers))  # before: left running, blocked, 1.4 GB
    again = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not list(cache.glob(".*"))  # the dead run's partial folder is gone
