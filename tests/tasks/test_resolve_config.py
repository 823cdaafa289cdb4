"""Which settings a run starts from when no config file is given."""

from cvpipe.config import Config
from cvpipe.tasks.train import resolve_train_config


def test_digits_preset_only_for_the_embedded_digits():
    digits = resolve_train_config(None, ["train.epochs=3"])
    assert (digits.model.name, digits.model.in_chans, digits.train.epochs) == ("lenet_digits", 1, 3)
    photos = resolve_train_config(None, ["data.root=photos"])
    assert photos.model == Config().model and photos.data.augment == Config().data.augment  # generic defaults
    back = resolve_train_config(None, ["data.root=photos", "data.root=digits"])
    assert back.model.name == "lenet_digits"


def test_resume_starts_from_the_checkpoint_config(tmp_path):
    from cvpipe.config import to_dict
    from cvpipe.engine.checkpoint import save_checkpoint

    saved = resolve_train_config(None, ["data.root=photos", "model.name=vgg11", "train.epochs=5"])
    path = save_checkpoint({"config": to_dict(saved)}, tmp_path / "last.pt")
    resumed = resolve_train_config(None, [f"resume={path}", "train.epochs=9"])
    assert (resumed.model.name, resumed.data.root, resumed.train.epochs) == ("vgg11", "photos", 9)
    assert resumed.train.resume == str(path)


def test_resume_from_best_pt_or_plain_weights_is_one_clear_error(tmp_path, capsys):
    from cvpipe.cli import main
    from cvpipe.config import to_dict
    from cvpipe.engine.checkpoint import save_checkpoint

    config = to_dict(resolve_train_config(None, [f"train.project={tmp_path}"]))
    best = save_checkpoint({"model": {}, "epoch": 1, "step": 3, "config": config, "classes": ["a"], "preprocess": {}}, tmp_path / "best.pt")
    assert main(["train", f"resume={best}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "best.pt: cannot be resumed (no optimizer, scheduler inside" in err
    weights = save_checkpoint({"conv.weight": __import__("torch").zeros(1)}, tmp_path / "w.pt")
    assert main(["train", f"resume={weights}"]) == 2
    assert "w.pt: not a cvpipe training checkpoint" in capsys.readouterr().err


def test_an_image_given_as_checkpoint_is_named_as_not_a_checkpoint(tmp_path, capsys):
    from PIL import Image

    from cvpipe.cli import main

    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (8, 8)).save(photo)
    for argv in (["train", f"resume={photo}"], ["eval", str(photo)], ["predict", str(photo), str(photo)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "photo.jpg: not a PyTorch checkpoint" in err, err


BAD_VALUES = [
    ("data.augment.image_size=[1,2,3]", "data.augment.image_size [1, 2, 3]: give one integer or [height, width]"),
    ("data.augment.image_size=-5", "data.augment.image_size -5: must be positive"),
    ("data.val_split=1.5", "data.val_split 1.5: must be in [0, 1)"),
    ("data.threshold=5", "data.threshold 5.0: a probability in [0, 1]"),
    ("data.layout=coco", "data.layout 'coco'"),
    ("model.name=lenet5", "unknown model 'lenet5'; did you mean lenet"),
    ("model.in_chans=2", "model.in_chans 2"),
    ("model.drop_rate=2", "model.drop_rate=2.0: a probability in [0, 1)"),
    ("train.device=gpu", "train.device 'gpu': use auto, cpu, cuda, cuda:N or mps"),
    ("train.metric=bogus", "train.metric='bogus': use auto, loss, acc, top5, mAP, F1"),
    ("train.ema_decay=2", "train.ema_decay=2.0: must be in [0, 1)"),
    ("train.patience=-1", "train.patience=-1: must be >= 0"),
]


def test_config_and_train_refuse_bad_values_before_making_a_run_folder(tmp_path, capsys):
    from cvpipe.cli import main

    (tmp_path / "photos" / "cat").mkdir(parents=True)  # never read: the settings fail first
    for override, message in BAD_VALUES:
        extra = ["train.ema=true"] if "ema" in override else []
        assert main(["config", override, *extra]) == 2, override
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (override, err)
        assert main(["train", f"data.root={tmp_path / 'photos'}", f"train.project={tmp_path / 'runs'}", override, *extra]) == 2
        assert message in capsys.readouterr().err, override
    assert not (tmp_path / "runs").exists()
