"""Face boxes in the cue sheet (each sample's boxes and confidences) and in its plot."""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from moodsic_engine.cue import CueSheet, SampleRecord, Segment, VideoRef
from moodsic_engine.errors import InputError
from moodsic_engine.pipeline import _face_boxes, _sample_records


def _sheet(tmp_path: Path, with_boxes: bool = True) -> CueSheet:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0")
    samples = []
    for k in range(20):  # 10 s at 2 samples/s; a face for 4 s, two faces for 2 s
        boxes: tuple[dict, ...] = ()
        if with_boxes and 4 <= k < 12:
            boxes = ({"box": [0.40, 0.20, 0.15, 0.27], "confidence": 0.93, "mesh": 0.99},)
        if with_boxes and 8 <= k < 12:
            boxes += ({"box": [0.05, 0.30, 0.10, 0.18], "confidence": 0.71, "mesh": 0.80},)
        samples.append(
            SampleRecord(
                t=k * 0.5,
                experts={},
                fused=None,
                stable={"v": 0.2, "a": 0.1},
                held=False,
                faces=len(boxes),
                face_boxes=boxes,
            )
        )
    seg = Segment(0.0, 10.0, 0, 250, "calm", "calm", 0.2, 0.1, 0.8)
    return CueSheet(
        video=VideoRef(str(video), 10.0, Fraction(25), 250),
        engine={"version": "test", "experts": ["face"], "config": {}},
        samples=tuple(samples),
        cuts=(),
        segments=(seg,),
    )


def test_face_boxes_round_trip_through_the_cue_file(tmp_path: Path) -> None:
    sheet = _sheet(tmp_path)
    path = sheet.to_json(tmp_path / "cue.json")
    back = CueSheet.from_json(path)
    assert [len(s.face_boxes) for s in back.samples] == [len(s.face_boxes) for s in sheet.samples]
    assert back.samples[9].face_boxes[1]["box"] == [0.05, 0.30, 0.10, 0.18]
    assert back.samples[9].face_boxes[0]["confidence"] == pytest.approx(0.93)
    # older cue sheets without the field still read, with no boxes
    data = json.loads(path.read_text())
    for s in data["samples"]:
        s.pop("face_boxes")
    assert all(s.face_boxes == () for s in CueSheet.from_dict(data).samples)


def test_a_box_outside_the_frame_is_refused_by_the_schema(tmp_path: Path) -> None:
    data = json.loads(_sheet(tmp_path).to_json_text())
    data["samples"][5]["face_boxes"][0]["box"] = [0.4, 0.2, 1.5, 0.3]
    with pytest.raises(InputError):
        CueSheet.from_dict(data)


def test_sample_records_carry_the_face_experts_boxes() -> None:
    from moodsic_engine.experts.base import ExpertSeries
    from moodsic_engine.pipeline import Analysis

    t = np.arange(3) * 0.5
    boxes = ((), ((0.1, 0.2, 0.3, 0.4, 0.9, 0.95),), ((0.5, 0.1, 0.2, 0.2, 0.7, -1.0),))
    face = ExpertSeries(
        "face", t, np.zeros(3), np.zeros(3), np.ones(3), np.ones(3),
        np.array([False, True, True]), faces=np.array([0, 1, 1]), boxes=boxes,
    )  # fmt: skip
    a = Analysis(
        video=VideoRef("x.mp4", 1.5, Fraction(25), 38),
        t=t,
        series=(face,),
        fused_va=np.zeros((3, 2)),
        fused_var=np.ones((3, 2)),
        stable_va=np.zeros((3, 2)),
        held=np.zeros(3, dtype=bool),
        cuts=(),
    )
    recs = _sample_records(a)
    assert [r.face_boxes for r in recs] == [
        (),
        ({"box": [0.1, 0.2, 0.3, 0.4], "confidence": 0.9, "mesh": 0.95},),
        ({"box": [0.5, 0.1, 0.2, 0.2], "confidence": 0.7, "mesh": -1.0},),
    ]
    assert _face_boxes(()) == ()
    # selecting samples keeps each sample's boxes with it
    assert face.select(np.array([2, 1])).boxes == (boxes[2], boxes[1])


def test_plot_draws_each_face_box(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from moodsic_engine.plot import draw_faces, plot_cue

    sheet = _sheet(tmp_path)
    fig, ax = plt.subplots()
    try:
        assert draw_faces(ax, sheet) == 12  # 8 samples with one face, 4 of them with two
        (coll,) = [c for c in ax.collections if c.get_gid() == "face-boxes"]
        assert len(coll.get_paths()) == 12
        # the second face sits at 0.05..0.15 across the frame
        ext = [p.get_extents() for p in coll.get_paths()]
        assert sorted({round(e.y0, 2) for e in ext}) == [0.05, 0.40]
    finally:
        plt.close(fig)
    shown = plot_cue(sheet, tmp_path / "with.png").read_bytes()
    hidden = plot_cue(sheet, tmp_path / "hidden.png", faces=False).read_bytes()
    bare = plot_cue(_sheet(tmp_path, with_boxes=False), tmp_path / "bare.png").read_bytes()
    assert shown != hidden
    assert hidden == bare  # faces=False draws exactly the plot of a sheet without boxes


def test_the_plot_of_a_sheet_without_boxes_has_no_face_panel(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from PIL import Image

    from moodsic_engine.plot import plot_cue

    sheet = _sheet(tmp_path)
    with_faces = Image.open(plot_cue(sheet, tmp_path / "a.png")).size
    without = Image.open(plot_cue(dataclasses.replace(sheet, samples=()), tmp_path / "b.png"))
    assert with_faces[1] > without.size[1]  # the third panel makes the picture taller


def test_face_boxes_survive_rebuilding_the_analysis_from_a_cue_sheet(tmp_path: Path) -> None:
    """Rescoring from a cue sheet (`--reuse`) rebuilds the samples: the boxes come along."""
    from moodsic_engine.pipeline import analysis_from_cue

    sheet = _sheet(tmp_path)
    recs = _sample_records(analysis_from_cue(sheet))
    assert [r.face_boxes for r in recs] == [s.face_boxes for s in sheet.samples]


def test_face_boxes_join_across_the_spans_of_an_edit() -> None:
    """score-timeline joins each span's samples; each sample keeps its own boxes."""
    from moodsic_engine.experts.base import ExpertSeries
    from moodsic_engine.pipeline import Analysis
    from moodsic_engine.spans import _join_series

    def part(n: int, box: tuple[float, ...]) -> Analysis:
        t = np.arange(n) * 0.5
        face = ExpertSeries(
            "face", t, np.zeros(n), np.zeros(n), np.ones(n), np.ones(n), np.ones(n, bool),
            faces=np.ones(n, np.int64), boxes=tuple((box,) for _ in range(n)),
        )  # fmt: skip
        z2 = np.zeros((n, 2))
        ref = VideoRef("x.mp4", n * 0.5, Fraction(25), n * 12)
        return Analysis(ref, t, (face,), z2, z2 + 1, z2, np.zeros(n, bool), ())

    a, b = (0.1, 0.1, 0.2, 0.2, 0.9, 1.0), (0.6, 0.2, 0.2, 0.2, 0.8, 0.9)
    (joined,) = _join_series([part(3, a), part(2, b)])
    assert joined.boxes == ((a,), (a,), (a,), (b,), (b,))
