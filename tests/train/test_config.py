import pytest

from selectivity.config import ConfigError, list_presets, load_config, parse_override


def test_every_preset_loads_and_validates():
    presets = list_presets()
    assert {"demo", "resnet20_cifar10", "resnet20_cifar10_fast", "vgg16_cifar10", "resnet18_tinyimagenet",
            "resnet50_tinyimagenet"} <= set(presets)
    for name in presets:
        assert load_config(name).name == name


def test_paper_recipes_are_what_the_papers_say():
    r20 = load_config("resnet20_cifar10")
    assert (r20.model.name, r20.optim.lr, r20.optim.momentum, r20.optim.weight_decay) == ("resnet20", 0.1, 0.9, 1e-4)
    assert (r20.train.epochs, r20.train.batch_size, r20.lr_schedule.milestones) == (160, 128, [0.5, 0.75])
    r18 = load_config("resnet18_tinyimagenet")
    assert (r18.model.name, r18.train.batch_size, r18.train.epochs) == ("resnet18", 256, 90)
    fast = load_config("resnet20_cifar10_fast")
    assert fast.train.amp == "bf16" and fast.train.channels_last


def test_dotted_overrides_are_typed():
    config = load_config("demo", ["train.epochs=6", "regularizer.alpha=-2", "regularizer.layers=[layer1]",
                                  "data.train_per_class=null"])
    assert config.train.epochs == 6 and config.regularizer.alpha == -2.0 and isinstance(config.regularizer.alpha, float)
    assert config.regularizer.layers == ["layer1"] and config.data.train_per_class is None
    assert parse_override("model.kwargs.width=2") == (["model", "kwargs", "width"], 2)


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.epoch=6", r"unknown config key 'train.epoch' \(did you mean epochs\?\)"),
        ("trian.epochs=6", r"unknown config key 'trian'"),
        ("train.epochs=six", r"train.epochs must be int, got 'six'"),
        ("train.epochs=2.5", r"train.epochs must be int"),
        ("train.channels_last=3", r"train.channels_last must be bool"),
        ("train.amp=fp8", r"train.amp must be one of \['auto', 'bf16', 'off'\]"),
        ("train.epochs=0", r"train.epochs must be >= 1"),
        ("optim.lr=-1", r"optim.lr must be > 0"),
        ("train", r"must look like key.sub=value"),
    ],
)
def test_bad_overrides_name_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config("demo", [override])


def test_unknown_preset_lists_the_presets(tmp_path):
    with pytest.raises(ConfigError, match="neither a YAML file nor a preset; presets: .*resnet20_cifar10"):
        load_config("resnet21")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(bad)


def test_exponent_notation_is_a_number():
    config = load_config("demo", ["optim.weight_decay=5e-4", "regularizer.alpha=-1e2"])
    assert config.optim.weight_decay == 5e-4 and config.regularizer.alpha == -100.0
