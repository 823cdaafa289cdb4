"""The typed config: YAML + overrides, strict keys and types, presets."""

import pytest
import yaml

from cvpipe.config import Config, dump_yaml, image_size_hw, load_config, preset_names, to_dict
from cvpipe.errors import ConfigError


def test_defaults_and_overrides_are_typed(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 3\noptim:\n  lr: 1\n")
    cfg = load_config(path, ["model.name=vgg11", "optim.betas=[0.8, 0.9]", "data.augment.image_size=[32, 48]"])
    assert cfg.train.epochs == 3
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)  # int accepted for a float
    assert cfg.model.name == "vgg11"
    assert cfg.optim.betas == [0.8, 0.9]
    assert image_size_hw(cfg.data.augment.image_size) == (32, 48)
    assert cfg.train.batch_size == Config().train.batch_size  # untouched default


def test_exponent_floats_without_a_dot():
    cfg = load_config(None, ["optim.lr=1e-4", "optim.eps=1E-8", "optim.betas=[0.9, 1e-3]"])
    assert cfg.optim.lr == 1e-4 and cfg.optim.eps == 1e-8 and cfg.optim.betas == [0.9, 1e-3]
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(None, ["optim.lr=fast"])


def test_unknown_key_suggests_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key train\.epoch; did you mean train\.epochs\?"):
        load_config(None, ["train.epoch=3"])
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  momentun: 0.9\n")
    with pytest.raises(ConfigError, match=r"optim\.momentun; did you mean optim\.momentum"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"unknown config key trian"):
        load_config({"trian": {}})


@pytest.mark.parametrize(
    "override, key",
    [("train.epochs=ten", "train.epochs"), ("train.epochs=2.5", "train.epochs"), ("train.deterministic=3", "train.deterministic"),
     ("optim.betas=0.9", "optim.betas"), ("data.augment.mean=[a, b]", r"data.augment.mean")],
)
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError, match=rf"config key {key}"):
        load_config(None, [override])


def test_bad_files_give_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not key=value"):
        load_config(None, ["train.epochs"])
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ConfigError, match="weights.yaml: not a UTF-8 text file"):
        load_config(binary)
    with pytest.raises(ConfigError, match=f"is a folder, not a YAML file; to use its images, set data.root={tmp_path}"):
        load_config(tmp_path)  # `cvpipe train my_photos/`
    with pytest.raises(ConfigError, match="expected a section"):
        load_config(None, ["train=5"])


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config("digits", ["train.epochs=7", "model.kwargs={width: 2}"])
    dump_yaml(cfg, tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert to_dict(again) == to_dict(cfg)
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["train"]["epochs"] == 7


def test_digits_preset_is_shipped():
    assert "digits" in preset_names()
    cfg = load_config("digits")
    assert cfg.data.root == "digits" and cfg.model.in_chans == 1
