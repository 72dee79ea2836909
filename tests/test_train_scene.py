"""FindingEmo training: real annotation reader, split, downloader, embedding cache, end to end."""

from __future__ import annotations

import http.server
import io
import json
import os
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from moodsic_engine.config import Config  # noqa: E402
from moodsic_engine.errors import InputError  # noqa: E402
from moodsic_engine.experts import scene  # noqa: E402
from moodsic_engine.experts.scene_testing import TINY_MODEL, make_tiny_checkpoint  # noqa: E402
from moodsic_engine.train import findingemo  # noqa: E402
from moodsic_engine.train.download import RECORD, download_images, read_records  # noqa: E402
from moodsic_engine.train.embed_cache import embed_dataset  # noqa: E402
from moodsic_engine.train.run import ablation, evaluate_scene_head, train_scene  # noqa: E402
from moodsic_engine.train.scene_head import TrainConfig, metrics  # noqa: E402

torch.set_num_threads(1)


# ----------------------------------------------------------------------------- real annotations
def test_real_findingemo_light_annotations() -> None:
    ann = findingemo.read_annotations()
    assert len(ann) == 25869 and ann["rel_path"].is_unique
    assert ann["valence"].min() == -3 and ann["valence"].max() == 3
    assert ann["arousal"].min() == 0 and ann["arousal"].max() == 6
    assert ann["v_ref"].between(-1, 1).all() and ann["a_ref"].between(-1, 1).all()
    np.testing.assert_allclose(ann["a_ref"], ann["arousal"] / 3 - 1)
    assert (ann["n_annotations"] == 1).all()
    assert np.median(ann["valence"]) == 1 and np.median(ann["arousal"]) == 3
    urls = findingemo.read_urls()
    assert len(urls) == 25623 and all(u[0].startswith("http") for u in list(urls.values())[:50])


def test_reader_rejects_out_of_range_and_averages_annotators(tmp_path: Path) -> None:
    ann, _ = findingemo.make_mini_findingemo(tmp_path, n=4)
    df = pd.read_csv(ann)
    dup = df.iloc[[0]].assign(valence=-df["valence"].iloc[0], user="other")
    pd.concat([df, dup]).to_csv(tmp_path / "multi.ann", index=False)
    multi = findingemo.read_annotations(tmp_path / "multi.ann")
    assert len(multi) == 4
    row = multi[multi["rel_path"] == df["image_path"].iloc[0]].iloc[0]
    assert row["valence"] == 0 and row["n_annotations"] == 2
    df.loc[2, "arousal"] = 7
    df.to_csv(tmp_path / "bad.ann", index=False)
    with pytest.raises(InputError, match="row 4"):
        findingemo.read_annotations(tmp_path / "bad.ann")
    df.loc[2, "arousal"] = 3
    df.loc[1, "image_path"] = "/Run_1/../../escape.jpg"
    df.to_csv(tmp_path / "escape.ann", index=False)
    with pytest.raises(InputError, match="row 3 has an image path"):
        findingemo.read_annotations(tmp_path / "escape.ann")


def test_split_by_image_is_disjoint_grouped_and_fixed() -> None:
    paths = [f"/Run_1/x/img{i % 50}.jpg" for i in range(120)]  # images with several rows
    s1 = findingemo.split_by_image(paths, seed=3)
    s2 = findingemo.split_by_image(list(reversed(paths)), seed=3)
    arr = np.array(paths)
    groups = [set(arr[s.tolist()]) for s in (s1.train, s1.val, s1.test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert sum(len(g) for g in groups) == 50 and len(s1.train) + len(s1.val) + len(s1.test) == 120
    assert groups[2] == set(np.array(list(reversed(paths)))[s2.test.tolist()])  # order-independent
    assert groups[2] != set(arr[findingemo.split_by_image(paths, seed=4).test.tolist()])


def test_local_path_refuses_escape(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        findingemo.local_path(tmp_path, "/../../etc/passwd")


# ----------------------------------------------------------------------------- downloader
def _jpeg(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), color).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture()
def server(tmp_path: Path):  # noqa: ANN201
    site = tmp_path / "site"
    site.mkdir()
    (site / "a.jpg").write_bytes(_jpeg((200, 10, 10)))
    (site / "b.jpg").write_bytes(_jpeg((10, 200, 10)))
    (site / "page.jpg").write_bytes(b"<html>not found</html>")
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k) -> None:  # noqa: ANN002, ANN003
            super().__init__(*a, directory=str(site), **k)

        def log_message(self, *a) -> None:  # noqa: ANN002
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()


def test_downloader_resumes_skips_dead_and_rate_limits(tmp_path: Path, server) -> None:  # noqa: ANN001
    base, hits = server
    urls = {
        "/Run_1/A/one.jpg": [f"{base}/missing.jpg", f"{base}/a.jpg"],  # first link dead
        "/Run_1/B/two.jpg": [f"{base}/page.jpg"],  # a web page, not an image
        "/Run_2/C/three.jpg": [f"{base}/b.jpg"],
    }
    root = tmp_path / "images"
    now = [0.0]
    sleeps: list[float] = []

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    summary = download_images(
        list(urls), urls, root, rate_per_s=4.0, clock=lambda: now[0], sleep=sleep
    )
    assert (summary.downloaded, summary.dead, summary.requests) == (2, 1, 4)
    assert sum(sleeps) == pytest.approx(0.75)  # 4 requests at 4/s: three gaps of 0.25 s
    assert (root / "Run_1/A/one.jpg").read_bytes() == (tmp_path / "site/a.jpg").read_bytes()
    assert not (root / "Run_1/B/two.jpg").exists()
    rec = read_records(root)
    assert (
        rec["/Run_1/A/one.jpg"]["url"].endswith("/a.jpg")
        and rec["/Run_1/B/two.jpg"]["status"] == "dead"
    )
    n_hits = len(hits)
    again = download_images(list(urls), urls, root, rate_per_s=0)
    assert (again.present, again.dead, again.requests) == (2, 1, 0) and len(hits) == n_hits
    retry = download_images(list(urls), urls, root, rate_per_s=0, retry_dead=True)
    assert retry.requests == 1 and retry.dead == 1
    lines = (root / RECORD).read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["rel_path"] for x in lines)


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def mini(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mini")
    ann, images = findingemo.make_mini_findingemo(root / "fe", n=60)
    ckpt = make_tiny_checkpoint(root / "clip")
    return {"root": root, "ann": ann, "images": images, "ckpt": ckpt}


def _config(ckpt: Path) -> Config:
    return Config().replace(
        **{"scene.model": TINY_MODEL, "scene.pretrained": str(ckpt), "scene.batch_size": 16}
    )


def test_embedding_cache_encodes_each_image_once(mini: dict[str, Path], tmp_path: Path) -> None:
    cfg = _config(mini["ckpt"])
    ref = scene.resolve_encoder(cfg.scene, None)
    enc = scene.build_encoder(ref, with_text=False)
    meta = scene.encoder_meta(ref, enc.embed_dim)
    paths = findingemo.read_annotations(mini["ann"])["rel_path"].tolist()[:12] + ["/Run_9/none.jpg"]
    bad = findingemo.local_path(mini["images"], paths[3])
    first = embed_dataset(enc, meta, mini["images"], paths, tmp_path)
    assert (
        first.encoded_now == 12
        and first.emb.shape == (12, 32)
        and first.missing == ["/Run_9/none.jpg"]
    )
    np.testing.assert_allclose(np.linalg.norm(first.emb, axis=1), 1.0, atol=1e-5)
    second = embed_dataset(enc, meta, mini["images"], paths[:12], tmp_path)
    assert second.encoded_now == 0
    np.testing.assert_array_equal(second.emb, first.emb)
    # other weights: the cache is not reused
    other_meta = dict(meta, fingerprint="other")
    assert embed_dataset(enc, other_meta, mini["images"], paths[:2], tmp_path).encoded_now == 2
    # an unreadable image is recorded and skipped
    original = bad.read_bytes()
    try:
        bad.write_bytes(b"garbage")
        new_dir = tmp_path / "fresh"
        res = embed_dataset(enc, meta, mini["images"], paths[:5], new_dir)
        assert res.unreadable == [paths[3]] and len(res.rel_paths) == 4
    finally:
        bad.write_bytes(original)


def test_train_scene_end_to_end(mini: dict[str, Path], tmp_path: Path) -> None:
    cfg = _config(mini["ckpt"])
    tc = TrainConfig(
        hidden=32, dropout=0.2, lr=3e-3, batch_size=16, max_epochs=80, patience=200, mc_passes=10
    )
    out = tmp_path / "out"
    lines: list[str] = []
    res = train_scene(
        mini["images"], out, cfg, annotations=mini["ann"], cache_dir=tmp_path / "cache",
        train_cfg=tc, fractions=(0.6, 0.2, 0.2), install=True, weights_dir=tmp_path / "w", echo=lines.append,
    )  # fmt: skip
    loss = res.train_loss
    assert len(loss) == 80 and np.mean(loss[-5:]) < 0.6 * np.mean(loss[:3])  # loss goes down
    assert res.test["n"] == 12 and 0 <= res.test["v_mae"] <= 6
    assert res.test["avg_mae_ref"] == pytest.approx(res.test["avg_mae"] / 3)
    md = res.report_md.read_text()
    assert "1.068" in md and "1.279" in md and "constant median" in md and "CC BY-NC-SA 4.0" in md
    data = json.loads(res.report_json.read_text())
    assert (
        data["training"]["n_train"] == 36
        and data["reference"]["reference: CLIP linear"]["v_mae"] == 1.11
    )
    # the head file carries its encoder, data, metrics and calibration; it loads as a trained expert
    head = scene.load_head(res.head_path)
    assert (
        head.meta["training"]["license"].startswith("FindingEmo")
        and head.meta["calibration"][0] > 0
    )
    assert res.installed is not None and res.installed.is_file()
    expert = scene.load(cfg, tmp_path / "w")
    assert expert.mode == "trained"
    # the eval entry point reproduces the test split figures for this head
    md2, rows = evaluate_scene_head(
        res.head_path,
        mini["images"],
        tmp_path / "eval",
        cfg,
        annotations=mini["ann"],
        cache_dir=tmp_path / "cache",
    )
    ours = next(iter(rows.values()))
    assert ours["n"] == 12 and ours["avg_mae"] == pytest.approx(res.test["avg_mae"], abs=0.15)
    assert md2.is_file()


def test_too_few_images_is_one_clear_error(mini: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--download"):
        train_scene(tmp_path / "empty", tmp_path / "o", _config(mini["ckpt"]), annotations=mini["ann"],
                    cache_dir=tmp_path / "c")  # fmt: skip


def test_ablation_table_over_encoders(mini: dict[str, Path], tmp_path: Path) -> None:
    other = make_tiny_checkpoint(tmp_path, seed=3, name="tiny2.safetensors")
    encoders = [
        (TINY_MODEL, str(mini["ckpt"])),
        (TINY_MODEL, str(other)),
        ("ViT-B-32", "laion2b_s34b_b79k"),
    ]
    tc = TrainConfig(hidden=16, batch_size=16, max_epochs=5, mc_passes=4)
    md, js, rows = ablation(
        mini["images"], tmp_path / "abl", _config(mini["ckpt"]), encoders, annotations=mini["ann"],
        cache_dir=tmp_path / "cache", train_cfg=tc, fractions=(0.6, 0.2, 0.2),
    )  # fmt: skip
    text = md.read_text()
    assert sum("MLP (ours)" in k for k in rows) == 2 and "tiny2.safetensors" in text
    assert "skipped ViT-B-32/laion2b_s34b_b79k" in text and "1.174" in text


def test_metrics_in_both_units() -> None:
    y = np.array([[0.0, 0.0], [1 / 3, -1 / 3], [-1.0, 1.0]])
    m = metrics(y + np.array([1 / 3, 0.0]), y)
    assert m["v_mae"] == pytest.approx(1.0) and m["a_mae"] == pytest.approx(0.0)
    assert m["v_mae_ref"] == pytest.approx(1 / 3) and m["rho_a"] == pytest.approx(1.0)


def test_cli_train_scene(mini: dict[str, Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from moodsic_engine.cli import app

    args = [
        "train", "scene", "--images", str(mini["images"]), "--annotations", str(mini["ann"]),
        "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--epochs", "5",
        "--scene-model", TINY_MODEL, "--scene-pretrained", str(mini["ckpt"]), "--progress", "json",
    ]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    done = json.loads(res.stdout.strip().splitlines()[-1])
    assert (
        done["event"] == "done" and Path(done["head"]).is_file() and Path(done["report"]).is_file()
    )
    args[3], args[9] = str(tmp_path / "none"), str(tmp_path / "c2")  # no images, empty cache
    bad = CliRunner().invoke(app, args)
    assert bad.exit_code == 1 and "--download" in bad.stderr and "Traceback" not in bad.output


def test_parse_encoders() -> None:
    from moodsic_engine.train.run import DEFAULT_ABLATION, parse_encoders

    assert parse_encoders("ViT-B-32:openai, MobileCLIP2-S0:/w/m.pt") == [
        ("ViT-B-32", "openai"),
        ("MobileCLIP2-S0", "/w/m.pt"),
    ]
    assert parse_encoders("default") == list(DEFAULT_ABLATION)
    with pytest.raises(InputError, match="MODEL:PRETRAINED"):
        parse_encoders("ViT-B-32")
