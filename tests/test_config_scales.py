import numpy as np
import pytest

from moodsic_engine import scales
from moodsic_engine.config import Config
from moodsic_engine.errors import InputError


def test_config_toml_round_trip(tmp_path):
    cfg = Config().replace(
        seed=7, experts=("grammar", "face"), **{"sample.sample_fps": 4.0, "stabilize.gate": 0.2}
    )
    path = cfg.save_toml(tmp_path / "c.toml")
    back = Config.from_toml(path)
    assert back == cfg
    assert back.sample.sample_fps == 4.0 and back.experts == ("grammar", "face")
    assert back.to_dict()["stabilize"]["gate"] == 0.2


def test_config_rejects_unknown_and_mistyped_keys(tmp_path):
    (tmp_path / "a.toml").write_text("[sample]\nsample_fsp = 3\n")
    with pytest.raises(InputError, match="sample_fsp"):
        Config.from_toml(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text('[segment]\nmin_segment_s = "long"\n')
    with pytest.raises(InputError, match="min_segment_s"):
        Config.from_toml(tmp_path / "b.toml")
    (tmp_path / "c.toml").write_text("not = [toml\n")
    with pytest.raises(InputError, match="not valid TOML"):
        Config.from_toml(tmp_path / "c.toml")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a = " + "[" * 100_000 + "]" * 100_000 + "\n", "nested too deeply"),
        ("x = " + "{ y = " * 5_000 + "1" + " }" * 5_000 + "\n", "nested too deeply"),
        ("# " + "x" * (1 << 20) + "\n", "too large"),
        ("sample = 3\n", "must be a table"),
        ('experts = ["grammar", "smell"]\n', "unknown expert(s) 'smell'"),
        ("experts = [1]\n", "list of names"),
        ("[face]\nemonet = 5\n", "must be a string"),
    ],
    ids=["deep-arrays", "deep-tables", "too-large", "not-a-table", "unknown-expert",
         "experts-not-names", "wrong-type"],
)  # fmt: skip
def test_config_errors_are_one_line(text, fragment, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        Config.from_toml(path)
    assert "\n" not in str(exc.value) and fragment in str(exc.value)


def test_config_has_every_tunable():
    d = Config().to_dict()
    assert d["sample"]["sample_fps"] == 2.0
    for section, key in [
        ("stabilize", "ema_alpha"), ("stabilize", "gate"), ("stabilize", "max_hold_s"),
        ("segment", "min_segment_s"), ("segment", "cut_snap_s"), ("match", "cluster_gate"),
        ("match", "no_repeat"),
    ]:  # fmt: skip
        assert key in d[section]
    assert "seed" in d


@pytest.mark.parametrize(
    "to_ref, from_ref, lo, hi",
    [
        (scales.findingemo_valence_to_ref, scales.ref_to_findingemo_valence, -3, 3),
        (scales.findingemo_arousal_to_ref, scales.ref_to_findingemo_arousal, 0, 6),
        (scales.deam_static_to_ref, scales.ref_to_deam_static, 1, 9),
        (scales.deam_dynamic_to_ref, scales.ref_to_deam_dynamic, -1, 1),
        (scales.veatic_to_ref, scales.ref_to_veatic, -1, 1),
    ],
)
def test_scale_round_trip_and_ends(to_ref, from_ref, lo, hi):
    x = np.linspace(lo, hi, 17)
    ref = to_ref(x)
    assert ref[0] == pytest.approx(-1.0) and ref[-1] == pytest.approx(1.0)
    np.testing.assert_allclose(from_ref(ref), x, atol=1e-12)


def test_scale_table_values():
    assert scales.findingemo_arousal_to_ref(3.0) == pytest.approx(0.0)
    assert scales.deam_static_to_ref(7.0) == pytest.approx(0.5)
    np.testing.assert_allclose(scales.emonet_to_ref([-1.4, 0.3, 1.2]), [-1.0, 0.3, 1.0])
    np.testing.assert_allclose(scales.range_to_ref([1, 3, 5], 1, 5), [-1, 0, 1])
    np.testing.assert_allclose(scales.ref_to_range(scales.range_to_ref([2.5], 0, 10), 0, 10), [2.5])
    np.testing.assert_allclose(scales.clip_ref([np.nan, np.inf, -np.inf, 0.5]), [0, 1, -1, 0.5])
