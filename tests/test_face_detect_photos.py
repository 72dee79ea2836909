"""What counts as a face, on real photographs that ship in installed packages.

Photos (all offline; licences as their packages state them):
- scikit-image 0.26 `skimage.data` (files in skimage/data/): astronaut (Eileen Collins,
  NASA, public domain), camera (the cameraman, CC0, Lav Varshney), chelsea/cat (CC0, Stefan
  van der Walt), coffee (CC0, Rachel Michetti), rocket (SpaceX, public domain), coins
  (Brooklyn Museum, no known copyright restrictions), hubble_deep_field (NASA, public
  domain), brick, grass, gravel (CC0 textures), horse, clock, moon, text, page, logo,
  colorwheel, cell, retina, immunohistochemistry, microaneurysms and the Shepp-Logan
  phantom. (human_mitosis, skin, eagle, kidney and lily need a download: not used.)
- matplotlib's mpl-data/sample_data/grace_hopper.jpg (official U.S. Navy photograph of
  Grace Hopper, public domain).
- scikit-learn's sklearn/datasets/images/china.jpg and flower.jpg (CC BY 2.0, by
  danielbuechele and vultilion on Flickr, per that folder's README.txt).

The group picture is composed here from the astronaut, the cameraman and Grace Hopper side
by side, with Chelsea the cat as a fourth "person" that must not count.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from moodsic_engine.config import Config
from moodsic_engine.experts import face as face_mod
from moodsic_engine.experts.base import FrameBatch
from moodsic_engine.experts.face_confirm import FaceRule, find_faces
from moodsic_engine.experts.face_detect import (
    LandmarkModel,
    as_rgb,
    iou,
    make_detector,
    score_faces,
)

NON_FACES = (
    "chelsea", "cat", "coffee", "rocket", "coins", "hubble_deep_field", "brick", "grass",
    "gravel", "horse", "clock", "moon", "text", "page", "logo", "colorwheel", "cell",
    "retina", "immunohistochemistry", "microaneurysms", "shepp_logan_phantom",
)  # fmt: skip
# Each portrait's face box in its own pixels (found by hand and by the detector at full size).
FACE_BOX = {
    "astronaut": (177, 82, 272, 177),
    "camera": (180, 122, 264, 206),
    "grace_hopper": (171, 146, 365, 340),
}


def _photo(name: str) -> np.ndarray:
    if name == "grace_hopper":
        import matplotlib.cbook as cbook

        path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    return as_rgb(getattr(data, name)())


def _framed(img: np.ndarray, height: int, aspect: float | None) -> tuple[np.ndarray, float, int]:
    """The photo scaled to `height`, letterboxed into a frame of `aspect` (None: its own);
    also the scale and the x offset of the photo in the frame."""
    s = height / img.shape[0]
    w = round(img.shape[1] * s)
    pic = cv2.resize(img, (w, height), interpolation=cv2.INTER_AREA)
    if aspect is None:
        return pic, s, 0
    width = max(w, round(height * aspect / 2) * 2)
    frame = np.full((height, width, 3), 40, np.uint8)
    x0 = (width - w) // 2
    frame[:, x0 : x0 + w] = pic
    return frame, s, x0


# Sizes a photo is seen at: its own, the 224-pixel working frame, and 16:9 frames.
VIEWS = ((None, None), (224, None), (160, 16 / 9), (224, 16 / 9), (360, 16 / 9))


@pytest.fixture(scope="module")
def detector():  # noqa: ANN201
    det = make_detector(min_confidence=FaceRule().min_confidence)
    yield det
    det.close()


@pytest.fixture(scope="module")
def mesh() -> LandmarkModel:
    return LandmarkModel()


def _views(img: np.ndarray) -> list[tuple[np.ndarray, float, int]]:
    return [(img, 1.0, 0) if h is None else _framed(img, h, a) for h, a in VIEWS]


@pytest.mark.parametrize("name", NON_FACES + ("china", "flower"))
def test_no_face_on_animal_object_and_texture_photos(name: str, detector, mesh) -> None:
    img = _photo(name)
    counts = [len(find_faces(frame, detector, mesh)) for frame, _, _ in _views(img)]
    assert counts == [0] * len(VIEWS)


def test_the_cat_gets_detector_boxes_but_the_mesh_refuses_them(detector, mesh) -> None:
    """The rule does the work: BlazeFace boxes the cat (measured 1, 0, 1, 2 and 1 boxes in
    the five views; two in the 398x224 working frame), and the old rule (confidence 0.5, no
    mesh gate) kept those boxes."""
    img = _photo("chelsea")
    old_counts = []
    for frame, _, _ in _views(img):
        h, w = frame.shape[:2]
        old = score_faces(detector.detect(frame), w, h, min_face_frac=0.04, min_confidence=0.5)
        old_counts.append(len(old))
        assert find_faces(frame, detector, mesh) == []
    assert sum(old_counts) >= 4 and max(old_counts) == 2


@pytest.mark.parametrize("name", sorted(FACE_BOX))
def test_exactly_one_face_on_a_portrait(name: str, detector, mesh) -> None:
    img = _photo(name)
    for frame, s, x0 in _views(img):
        found = find_faces(frame, detector, mesh)
        assert len(found) == 1, (name, frame.shape)
        bx0, by0, bx1, by1 = FACE_BOX[name]
        truth = (bx0 * s + x0, by0 * s, bx1 * s + x0, by1 * s)
        assert iou(found[0].detected.box, truth) > 0.5
        assert found[0].detected.confidence >= 0.6 and found[0].presence >= 0.5


def test_spacesuit_box_is_not_a_face(detector, mesh) -> None:
    """In a 96-pixel 16:9 frame BlazeFace also boxes the astronaut's spacesuit below her
    face (0.54) and the mesh, fooled, says 0.90: the confidence gate refuses it."""
    frame, s, x0 = _framed(_photo("astronaut"), 96, 16 / 9)
    h, w = frame.shape[:2]
    old = score_faces(detector.detect(frame), w, h, min_face_frac=0.04, min_confidence=0.5)
    assert len(old) == 2  # what the old rule kept: the face and the suit
    found = find_faces(frame, detector, mesh)
    assert len(found) == 1
    bx0, by0, bx1, by1 = FACE_BOX["astronaut"]
    assert iou(found[0].detected.box, (bx0 * s + x0, by0 * s, bx1 * s + x0, by1 * s)) > 0.5


def _group(height: int = 512) -> tuple[np.ndarray, list[tuple[float, float, float, float]]]:
    """Astronaut | cameraman | Grace Hopper | Chelsea, each scaled to `height`, side by side
    with a 24-pixel grey gap; the three people's face boxes in the picture's pixels."""
    parts, truths, x = [], [], 0
    for name in ("astronaut", "camera", "grace_hopper", "chelsea"):
        img = _photo(name)
        s = height / img.shape[0]
        pic = cv2.resize(img, (round(img.shape[1] * s), height), interpolation=cv2.INTER_AREA)
        if name in FACE_BOX:
            bx0, by0, bx1, by1 = FACE_BOX[name]
            truths.append((bx0 * s + x, by0 * s, bx1 * s + x, by1 * s))
        parts += [pic, np.full((height, 24, 3), 128, np.uint8)]
        x += pic.shape[1] + 24
    return np.concatenate(parts[:-1], axis=1), truths


@pytest.mark.parametrize("height", [512, 360])
def test_group_picture_counts_the_three_people_and_not_the_cat(height: int, detector, mesh):
    picture, truths = _group(height)
    found = find_faces(picture, detector, mesh)
    assert len(found) == 3
    for truth in truths:  # one face on each person
        assert sum(iou(f.detected.box, truth) > 0.5 for f in found) == 1


def test_expert_counts_confirmed_faces_and_records_their_boxes() -> None:
    """Through the face expert (landmark fallback: no EmoNet weights here), the samples'
    face counts and normalised boxes, as the cue sheet records them."""
    picture, truths = _group(360)
    cat = cv2.resize(_photo("chelsea"), (picture.shape[1], 360))
    ex = face_mod.load(Config(), None)
    try:
        est = ex.predict(FrameBatch(np.stack([picture, cat]), np.array([0.0, 0.5]), np.zeros(2)))
    finally:
        ex.close()
    assert est.faces.tolist() == [3, 0]
    assert est.present.tolist() == [True, False]
    assert est.boxes is not None and len(est.boxes[0]) == 3 and est.boxes[1] == ()
    h, w = picture.shape[:2]
    for (x, y, bw, bh, conf, presence), truth in zip(
        sorted(est.boxes[0]), sorted(truths), strict=True
    ):
        assert 0 <= x and x + bw <= 1 and 0 <= y and y + bh <= 1
        assert iou((x * w, y * h, (x + bw) * w, (y + bh) * h), truth) > 0.5
        assert conf >= 0.6 and presence >= 0.5
