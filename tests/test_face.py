"""Face expert: detection, scoring, alignment, TTA views, aggregation, fallback, fetch."""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from moodsic_engine.config import Config, FaceConfig
from moodsic_engine.errors import ResourceError
from moodsic_engine.experts import face as face_mod
from moodsic_engine.experts.base import FrameBatch
from moodsic_engine.experts.bench_experts import bench_face
from moodsic_engine.experts.face import (
    FaceEstimate,
    FaceExpert,
    combine,
    make_view,
    probe,
    tta_views,
)
from moodsic_engine.experts.face_detect import (
    Face,
    HaarDetector,
    LandmarkModel,
    align_face,
    alignment_matrix,
    as_rgb,
    eye_centres,
    geometry_va,
    make_detector,
    score_faces,
    transform_points,
)
from moodsic_engine.experts.fetch_weights import fetch_face as fetch
from moodsic_engine.weights import WeightsError

torch.set_num_threads(1)

ASTRO = data.astronaut()  # 512x512 RGB; the face is around x 177-272, y 82-177


@pytest.fixture(scope="module")
def detector():
    det = make_detector()
    yield det
    det.close()


@pytest.fixture(scope="module")
def landmarks() -> LandmarkModel:
    return LandmarkModel()


def _faces(det, img: np.ndarray, **kw) -> list[Face]:
    h, w = img.shape[:2]
    opts = {"min_face_frac": 0.04, "min_confidence": 0.5} | kw
    return score_faces(det.detect(as_rgb(img)), w, h, **opts)


class FakeEmoNet(torch.nn.Module):
    """Cheap stand-in with EmoNet's interface; its valence depends on left/right, so a
    mirrored view gives a different answer."""

    n_expression = 8

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        w = x.shape[-1]
        v = x[:, 0, :, : w // 2].mean((1, 2)) - x[:, 0, :, w // 2 :].mean((1, 2))
        a = x.mean((1, 2, 3)) - 0.5
        return {"valence": 5 * v, "arousal": a, "expression": torch.zeros(len(x), 8)}


# ----------------------------------------------------------------------------- detection
def test_astronaut_face_found_at_the_right_place(detector) -> None:
    faces = _faces(detector, ASTRO)
    assert len(faces) == 1
    f = faces[0]
    cx, cy = f.center
    assert 200 < cx < 250 and 105 < cy < 155
    assert 60 < f.side < 140
    assert f.confidence > 0.8 and f.score > 0
    (rx, ry), (lx, ly) = f.right_eye, f.left_eye
    assert rx < lx  # the subject's right eye is on the image's left
    assert 90 < ry < 125 and 90 < ly < 125


def test_grey_and_four_channel_frames(detector) -> None:
    grey = cv2.cvtColor(ASTRO, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([ASTRO, np.full(ASTRO.shape[:2], 255, np.uint8)])
    for img in (grey, grey[:, :, None], rgba, ASTRO.astype(np.float32) / 255):
        assert as_rgb(img).shape == (512, 512, 3)
        assert len(_faces(detector, img)) == 1


def test_no_face_in_a_blank_or_textured_frame(detector) -> None:
    rng = np.random.default_rng(0)
    assert _faces(detector, np.zeros((224, 398, 3), np.uint8)) == []
    assert _faces(detector, rng.integers(0, 255, (224, 398, 3), dtype=np.uint8)) == []


def test_small_face_in_a_wide_frame_found_through_tiles(detector) -> None:
    # 16:9 frame at working resolution with a ~45 px face near one side
    frame = np.full((224, 398, 3), 80, np.uint8)
    face = cv2.resize(ASTRO[40:240, 120:320], (100, 100))
    frame[60:160, 270:370] = face
    faces = _faces(detector, frame)
    assert len(faces) == 1
    assert 270 < faces[0].center[0] < 370


def test_tiny_faces_are_ignored(detector) -> None:
    assert len(_faces(detector, ASTRO, min_face_frac=0.1)) == 1
    assert _faces(detector, ASTRO, min_face_frac=0.35) == []  # the face is ~95 px of 512


def test_faces_cut_by_the_border_and_low_confidence_are_ignored() -> None:
    inside = Face((40, 40, 80, 80), 0.9, None, None)
    mostly_out = Face((-70, 40, 30, 140), 0.9, None, None)  # 70 % outside
    weak = Face((100, 40, 140, 80), 0.3, None, None)
    kept = score_faces([inside, mostly_out, weak], 200, 200, min_face_frac=0.05, min_confidence=0.5)
    assert [f.box for f in kept] == [inside.box]


def test_score_prefers_big_central_faces() -> None:
    central = Face((80, 60, 120, 100), 0.8, None, None)
    corner = Face((0, 0, 40, 40), 0.8, None, None)
    big_corner = Face((0, 0, 80, 80), 0.8, None, None)
    kept = score_faces(
        [corner, central, big_corner], 200, 160, min_face_frac=0.05, min_confidence=0.5
    )
    assert kept[0].box == central.box or kept[0].box == big_corner.box
    by_box = {f.box: f.score for f in kept}
    assert by_box[central.box] > by_box[corner.box]  # same size: centrality decides
    assert by_box[big_corner.box] > by_box[corner.box]  # same place: size decides
    # confidence x sqrt(relative area) x centrality, exactly
    expect = 0.8 * math.sqrt(40 * 40 / (200 * 160)) * 1.0
    assert by_box[central.box] == pytest.approx(expect)


def test_haar_fallback_detector_finds_the_astronaut() -> None:
    faces = HaarDetector().detect(ASTRO)
    assert faces and any(170 < f.center[0] < 280 and 80 < f.center[1] < 180 for f in faces)


# ----------------------------------------------------------------------------- alignment
def test_alignment_is_256_rgb_with_level_eyes(detector, landmarks) -> None:
    rot = cv2.getRotationMatrix2D((256, 256), 20.0, 1.0)
    tilted = cv2.warpAffine(ASTRO, rot, (512, 512))
    (face,) = _faces(detector, tilted)
    (rx, ry), (lx, ly) = face.right_eye, face.left_eye
    assert abs(math.degrees(math.atan2(ly - ry, lx - rx))) > 10  # really tilted
    face, prob, _ = landmarks.refine(tilted, face)  # mesh eye centres, as the expert does
    assert prob > 0.9
    crop = align_face(tilted, face)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.float32
    assert 0.0 <= crop.min() and crop.max() <= 1.0 and crop.max() > 0.5
    eyes = transform_points(alignment_matrix(face), np.array([face.right_eye, face.left_eye]))
    assert abs(eyes[0, 1] - eyes[1, 1]) < 1.0
    assert 60 < eyes[1, 0] - eyes[0, 0] < 140  # a sensible face size in the crop
    # independent checks on the aligned crop: the face mesh's eyes, and the detector again
    points, _ = landmarks.landmarks(
        (crop * 255).astype(np.uint8), Face((64, 64, 192, 192), 1.0, None, None)
    )
    right, left = eye_centres(points)
    assert abs(math.degrees(math.atan2(left[1] - right[1], left[0] - right[0]))) < 3.0
    (again,) = _faces(detector, (crop * 255).astype(np.uint8))
    assert abs(again.center[0] - 128) < 25 and abs(again.center[1] - 128) < 35


def test_flip_view_really_flips_and_jitters_differ() -> None:
    crop = align_face(ASTRO, Face((177, 82, 272, 177), 0.9, (201, 105), (246, 109)))
    views = tta_views(crop, 5)
    assert views.shape == (5, 256, 256, 3)
    assert np.array_equal(views[0], crop)
    assert np.array_equal(views[1], crop[:, ::-1])
    assert not np.array_equal(views[1], crop)
    for i in range(2, 5):
        assert np.mean(np.abs(views[i] - crop)) > 0.005
        assert np.mean(np.abs(views[i] - crop)) < 0.2  # small jitter, same face
    assert np.array_equal(make_view(crop, 1), views[1])


# ----------------------------------------------------------------------------- EmoNet path
def _expert(detector, model=None, **cfg) -> FaceExpert:
    return FaceExpert(
        dataclasses.replace(FaceConfig(), **cfg),
        detector,
        emonet=model or FakeEmoNet(),
        landmarks=LandmarkModel(),
    )


def _batch(
    frames: list[np.ndarray], t0: float = 0.0, fps: float = 2.0, index0: int = 0
) -> FrameBatch:
    times = t0 + np.arange(len(frames)) / fps
    return FrameBatch(np.stack(frames), times, np.zeros(len(frames)), index0=index0)


def test_tta_variance_positive_with_a_random_emonet(detector) -> None:
    from moodsic_engine.experts.emonet import EmoNet

    torch.manual_seed(0)
    net = EmoNet(8).eval()
    # a zero threshold forces the full set of views on a new face
    ex = _expert(detector, net, tta_uncertain_var=0.0)
    est, seen = ex.predict_frame(ASTRO, 0.0)
    assert seen == 1 and len(est) == 1
    assert ex.stats.views == 5
    track = ex._tracks[0]
    v = np.array([x[2] for x in track.views])
    assert v.var() > 0
    floor = face_mod.PUBLISHED_MSE[8][0]
    assert est[0].var_v > floor  # spread adds to the calibrated floor
    assert -1 <= est[0].v <= 1 and -1 <= est[0].a <= 1


def test_no_face_means_absent_and_no_emonet_call(detector) -> None:
    ex = _expert(detector)
    blank = np.zeros((224, 398, 3), np.uint8)
    est = ex.predict(_batch([blank] * 3))
    assert not est.present.any()
    assert list(est.faces) == [0, 0, 0]
    assert ex.stats.views == 0


def _scene(shift: int = 0, brightness: int = 0) -> np.ndarray:
    frame = np.full((224, 398, 3), 90, np.uint8)
    face = cv2.resize(ASTRO[30:230, 130:320], (110, 116))
    face = np.clip(face.astype(np.int16) + brightness, 0, 255).astype(np.uint8)
    frame[50:166, 144 + shift : 254 + shift] = face
    return frame


def test_steady_face_reuses_views_and_stays_within_budget(detector) -> None:
    ex = _expert(detector)
    frames = [_scene(shift=(k % 3)) for k in range(20)]  # 10 s of a steady face
    est = ex.predict(_batch(frames))
    assert est.present.all() and (est.faces == 1).all()
    s = ex.stats
    assert s.faces == 20
    assert s.views <= 2 * s.faces
    assert s.views < s.faces  # fewer views than one per sample: the steady face is reused
    assert s.reused > 0
    # a new clip starts afresh
    ex.predict(_batch(frames[:2]))
    assert len(ex._tracks) == 1


def _frown_scene() -> np.ndarray:
    """The same scene with the smile painted over by a closed, down-turned mouth."""
    frame = _scene()
    face = frame[50:166, 144:254]
    skin = face[50:56, 28:36].reshape(-1, 3).mean(0).astype(np.uint8)
    face[60:78, 36:72] = skin
    cv2.ellipse(face, (54, 72), (12, 5), 0, 180, 360, (120, 60, 60), 2)
    return frame


def test_changed_expression_is_evaluated_again(detector) -> None:
    ex = _expert(detector)
    ex.predict(_batch([_scene(), _scene()]))
    views = ex.stats.views
    assert ex.stats.reused == 1
    # lighting alone is not a new expression: the estimate is reused
    ex.predict(_batch([_scene(brightness=-20)], t0=1.0, index0=2))
    assert ex.stats.views == views and ex.stats.reused == 2
    ex.predict(_batch([_frown_scene()], t0=1.5, index0=3))
    assert ex.stats.views > views
    # after reuse_max_s a steady face gets one more view, not a new set
    views = ex.stats.views
    ex.predict(_batch([_frown_scene()], t0=1.5 + FaceConfig().reuse_max_s + 0.1, index0=4))
    assert ex.stats.views == views + 1


def test_several_faces_combine_by_score() -> None:
    big = FaceEstimate(0.8, 0.2, 0.1, 0.1, weight=3.0)
    small = FaceEstimate(-0.4, 0.2, 0.1, 0.1, weight=1.0)
    v, a, var_v, var_a = combine([big, small])
    assert v == pytest.approx((3 * 0.8 - 0.4) / 4)
    assert a == pytest.approx(0.2)
    assert var_a == pytest.approx(0.1)
    assert var_v > 0.1  # disagreement between faces is uncertainty


def test_two_faces_counted(detector) -> None:
    frame = np.full((224, 398, 3), 90, np.uint8)
    face = cv2.resize(ASTRO[30:230, 130:320], (95, 100))
    frame[60:160, 40:135] = face
    frame[60:160, 260:355] = face
    ex = _expert(detector)
    est = ex.predict(_batch([frame]))
    assert est.faces[0] == 2 and est.present[0]


# ----------------------------------------------------------------------------- fallback
def _landmark_set(corner_dy: float) -> np.ndarray:
    """A synthetic eyes-level landmark set; corner_dy < 0 lifts the mouth corners (smile)."""
    p = np.zeros((468, 2))
    for idx, xy in {
        33: (60, 100), 133: (85, 100), 362: (115, 100), 263: (140, 100),
        159: (72, 96), 145: (72, 104), 386: (128, 96), 374: (128, 104),
        105: (72, 80), 334: (128, 80),
        13: (100, 160), 14: (100, 163),
        61: (80, 161.5 + corner_dy), 291: (120, 161.5 + corner_dy),
    }.items():  # fmt: skip
        p[idx] = xy
    return p


def test_fallback_smile_beats_frown() -> None:
    v_smile, _ = geometry_va(_landmark_set(-8))
    v_neutral, _ = geometry_va(_landmark_set(0))
    v_frown, _ = geometry_va(_landmark_set(+8))
    assert v_smile > v_neutral > v_frown
    assert v_smile > 0 > v_frown


def test_fallback_on_the_smiling_astronaut(detector, landmarks) -> None:
    (face,) = _faces(detector, ASTRO)
    points, prob = landmarks.landmarks(ASTRO, face)
    assert points.shape == (468, 2) and prob > 0.9
    v, a = geometry_va(points)
    assert v > 0.3 and -1 <= a <= 1
    ex = FaceExpert(FaceConfig(), detector, landmarks=landmarks)
    assert ex.mode == "fallback"
    est = ex.predict(_batch([ASTRO]))
    assert est.present[0] and est.v[0] > 0.3
    smile, frown = ex.predict(_batch([_scene(), _frown_scene()])).v
    assert smile > frown + 0.3
    assert est.var_v[0] == pytest.approx(FaceConfig().fallback_var)


# ----------------------------------------------------------------------------- probe / load / fetch
def test_probe_and_load_without_weights_fall_back(tmp_path) -> None:
    av = probe(Config(), tmp_path)
    assert av.ready and "fallback" in av.uses and "emonet_8.pth" in av.reason
    ex = face_mod.load(Config(), tmp_path)
    try:
        assert ex.mode == "fallback"
    finally:
        ex.close()
    missing = Config().replace(**{"face.emonet": str(tmp_path / "nope.pth")})
    av = probe(missing, tmp_path)
    assert not av.ready and "nope.pth" in av.reason
    with pytest.raises(WeightsError, match="nope.pth"):  # named by the user: the run stops
        face_mod.load(missing, tmp_path)


def test_bad_checkpoint_is_refused_by_name(tmp_path) -> None:
    torch.save({"module.conv1.weight": torch.zeros(64, 3, 7, 7)}, tmp_path / "emonet_8.pth")
    assert probe(Config(), tmp_path).ready  # probe loads nothing
    with pytest.raises(  # there but unusable: the run stops, never a quiet skip
        WeightsError, match=r"missing key.*emonet_8\.pth|emonet_8\.pth.*missing"
    ):
        face_mod.load(Config(), tmp_path)


def test_fetch_refuses_without_licence(tmp_path) -> None:
    lines: list[str] = []
    with pytest.raises(ResourceError, match="--accept-license"):
        fetch(Config(), tmp_path, accept_license=False, echo=lines.append)
    assert any("CC BY-NC-ND" in line or "NonCommercial" in line for line in lines)
    assert list(tmp_path.iterdir()) == []


def test_fetch_downloads_and_verifies(tmp_path) -> None:
    from moodsic_engine.experts.emonet import EmoNet

    src = tmp_path / "src"
    src.mkdir()
    torch.manual_seed(0)
    torch.save({f"module.{k}": v for k, v in EmoNet(8).state_dict().items()}, src / "good.pth")
    torch.save({"module.x": torch.zeros(1)}, src / "bad.pth")
    dest = tmp_path / "weights"
    lines: list[str] = []
    saved = fetch(
        Config(),
        dest,
        accept_license=True,
        echo=lines.append,
        urls={"emonet_8.pth": (src / "good.pth").as_uri()},
    )
    assert saved == [dest / "emonet_8.pth"] and saved[0].is_file()
    assert any("downloading" in line for line in lines)
    ex = face_mod.load(Config(), dest)
    try:
        assert ex.mode == "trained" and "8 classes" in ex.source
    finally:
        ex.close()
    with pytest.raises(ResourceError, match="emonet_5.pth"):
        fetch(
            Config(),
            dest,
            accept_license=True,
            echo=lines.append,
            urls={"emonet_5.pth": (src / "bad.pth").as_uri()},
        )
    assert not (dest / "emonet_5.pth").exists()  # nothing half-written or unverified is kept
    assert not [p for p in dest.iterdir() if p.name.startswith(".")]


# ----------------------------------------------------------------------------- video
def test_synthetic_video_face_only_at_known_times(tmp_path) -> None:
    from media import pipe_video

    from moodsic_engine.config import SampleConfig
    from moodsic_engine.experts.base import ClipContext, ExpertSeries
    from moodsic_engine.video import sample_video

    rng = np.random.default_rng(3)
    texture = (
        rng.integers(40, 200, (180 // 6, 320 // 6, 3), dtype=np.uint8).repeat(6, 0).repeat(6, 1)
    )
    texture = np.pad(texture, ((0, 0), (0, 2), (0, 0)), mode="edge")
    face = cv2.resize(ASTRO[30:230, 130:320], (95, 100))

    def frame(k: int) -> np.ndarray:  # 10 fps; the astronaut is in frames 30..49 (3.0-4.9 s)
        img = np.roll(texture, k, axis=1).copy()
        if 30 <= k < 50:
            img[40:140, 190:285] = face
        return img

    video = pipe_video(tmp_path / "face.mp4", frame, 80, rate="10")
    ex = face_mod.load(Config(), tmp_path)  # no weights here: the fallback, the full real path
    try:
        parts, times, centres = [], [], []
        for batch in sample_video(video, SampleConfig(sample_fps=2.0), batch_size=6):
            parts.append(ex.predict(batch))
            times.extend(batch.times.tolist())
            for fr, t in zip(batch.frames, batch.times, strict=True):
                if 3.2 < t < 4.8:
                    _, faces = ex.detect(fr)
                    h, w = fr.shape[:2]
                    centres.append((faces[0].center[0] / w, faces[0].center[1] / h))
        t = np.array(times)
        series = ExpertSeries.concat("face", ex.mode, t, parts)
        series = ex.finalize(series, ClipContext(8.0, 10))
    finally:
        ex.close()
    expected = (t >= 2.99) & (t < 4.95)
    assert expected.sum() == 4
    assert np.array_equal(series.present, expected), list(zip(t, series.present, strict=True))
    assert np.array_equal(series.faces, expected.astype(int))
    assert series.info["coverage"] == pytest.approx(4 / len(t))
    # at the right place: box centre at (237.5/320, 90/180) of the frame
    assert centres
    for cx, cy in centres:
        assert abs(cx - 237.5 / 320) < 0.04 and abs(cy - 90 / 180) < 0.06
    assert (series.v[series.present] > 0.2).all()  # she smiles, in the fallback too


def test_tta_scale_fit_matches_mean_squared_error() -> None:
    rng = np.random.default_rng(0)
    spread = rng.uniform(0.0, 0.05, (200, 2))
    floor = (0.05, 0.04)
    err = rng.normal(0, np.sqrt(0.05 + 3.0 * spread[:, 0]), 200)
    sq = np.stack([err**2, np.full(200, 0.03)], axis=1)  # second dim: already below the floor
    s_v, s_a = face_mod.fit_tta_scale(spread, sq, floor)
    assert np.mean(floor[0] + s_v * spread[:, 0]) == pytest.approx(np.mean(sq[:, 0]))
    assert s_a == 0.0


@pytest.mark.slow
def test_benchmark_lines() -> None:
    lines = bench_face(Config(), None, seconds=3.0)
    text = "\n".join(lines)
    assert "faces/s" in text and "target <= 2x" in text and "share" in text
    assert "coverage 100%" in text  # the generated clip has her face in every sample
    ratio = float(text.split("one view per face: ")[1].split("x")[0])
    assert 0 < ratio <= 2.0


class FakeMesh:
    """Stands in for the mesh model: returns a scripted expression per call."""

    def __init__(self, corner_dys: list[float]) -> None:
        self.script = list(corner_dys)

    def refine(
        self, rgb: np.ndarray, face: Face, detail: object = None
    ) -> tuple[Face, float, np.ndarray]:
        return face, 1.0, _landmark_set(self.script.pop(0))


def test_reuse_policy_steady_moving_and_changed(detector) -> None:
    # IOD is 55 px in _landmark_set: moving 4 px per sample = 0.073 IOD, above the steady
    # threshold (0.06) but never a new expression (0.18) between evaluations; 13 px = 0.24
    steady, moving, changed = [0.0] * 8, [-4.0 * k for k in range(8)], [0.0, 0.0, -13.0]
    frames = [_scene()] * 8
    runs = {}
    for name, script in (("steady", steady), ("moving", moving), ("changed", changed)):
        # one view per evaluation: counts are evaluations; reuse_max_s 2 s (default 4 s)
        ex = _expert(detector, tta_views=1, reuse_max_s=2.0)
        ex.landmarks = FakeMesh(script)
        ex.predict(_batch(frames[: len(script)]))
        runs[name] = ex.stats.views
    assert runs["steady"] == 2  # t=0, then one refresh after reuse_max_s (2 s)
    assert runs["moving"] == 4  # every other sample (MIN_REFRESH_S = 0.9 s at 2 samples/s)
    assert runs["changed"] == 2  # t=0, then at once when the expression changes


def test_detector_falls_back_to_haar_when_mediapipe_cannot_run(monkeypatch, tmp_path) -> None:
    from moodsic_engine.experts import face_detect

    def broken(*_a, **_k):
        raise ResourceError("MediaPipe cannot be imported: test")

    monkeypatch.setattr(face_detect, "MediaPipeDetector", broken)
    det = make_detector()
    assert isinstance(det, HaarDetector) and det.kind == "haar"
    with pytest.raises(ResourceError, match="nope.tflite"):
        make_detector(str(tmp_path / "nope.tflite"))


def test_a_face_that_looks_different_is_evaluated_at_once(detector) -> None:
    # same geometry, very different look (as after a cut to another shot): no reuse
    ex = _expert(detector, tta_views=1)
    ex.predict(_batch([_scene(), _scene(brightness=-90)]))
    assert ex.stats.views == 2 and ex.stats.reused == 0


def test_five_class_file_under_the_eight_class_name_is_refused(tmp_path) -> None:
    from moodsic_engine.experts.emonet import EmoNet

    assert face_mod.expected_classes(tmp_path / "emonet_5.pth") == 5
    assert face_mod.expected_classes(tmp_path / "my_model.pth") is None
    torch.manual_seed(0)
    torch.save(
        {f"module.{k}": v for k, v in EmoNet(5).state_dict().items()}, tmp_path / "emonet_8.pth"
    )
    with pytest.raises(WeightsError, match="5-class"):
        face_mod.load(Config(), tmp_path)


def test_face_cut_by_the_frame_border(detector) -> None:
    def shifted(px: int) -> np.ndarray:
        img = np.roll(ASTRO, -px, axis=1)
        img[:, -px:] = 0
        return np.ascontiguousarray(img)

    ex = _expert(detector, tta_views=1)
    est = ex.predict(_batch([shifted(190), shifted(250)]))  # ~20 % cut off; half or more
    assert list(est.present) == [True, False]
    assert list(est.faces) == [1, 0]
    assert np.isfinite(est.v).all() and np.isfinite(est.var_v).all()
