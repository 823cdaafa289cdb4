"""``cvpipe models``: every model with its parameter count."""

from __future__ import annotations

from cvpipe.cli import main
from cvpipe.models import list_models


def test_lists_every_model_with_parameter_count(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in list_models():
        assert f"\n{name} " in out
    assert "25,557,032" in out.split("\nresnet50 ")[1].splitlines()[0]
    assert "61,100,840" in out.split("\nalexnet ")[1].splitlines()[0]


def test_pattern_and_head_size(capsys):
    assert main(["models", "lenet*", "--num-classes", "10"]) == 0
    out = capsys.readouterr().out
    assert "121,182" in out and "resnet" not in out and "2 model(s)" in out


def test_no_match_is_a_one_line_error(capsys):
    assert main(["models", "nothing*"]) == 2
    err = capsys.readouterr().err
    assert "no model matches" in err and err.count("\n") == 1


def test_a_plain_word_matches_anywhere_in_the_name_ignoring_case(capsys):
    assert main(["models", "ResNet"]) == 0
    out = capsys.readouterr().out
    assert "\nresnet18 " in out and "\nresnet50 " in out and "\nvgg11 " not in out
    assert list_models("vit_b*") == ["vit_b_16", "vit_b_32"]  # a glob still matches whole names
    assert list_models("b_16") == ["vit_b_16"]


def test_the_prefixes_the_footer_advertises_list_their_models(capsys):
    assert main(["models", "tv:resnet1"]) == 0
    out = capsys.readouterr().out
    assert "tv:resnet18\n" in out and "tv:resnet152\n" in out and "tv:vgg11" not in out
    assert main(["models", "tv:nothing*"]) == 2
    err = capsys.readouterr().err
    assert "no tv model matches 'nothing*'" in err and err.count("\n") == 1
