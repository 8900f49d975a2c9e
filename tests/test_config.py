import pytest

from ltlab.config import list_presets, load_config, to_yaml
from ltlab.errors import ConfigError


def test_defaults_and_overrides():
    cfg = load_config("synthetic", ["optimizer.name=gnm", "optimizer.lr=0.01", "loss.drw_epoch=null"])
    assert cfg.optimizer.name == "gnm" and cfg.optimizer.lr == 0.01 and cfg.loss.drw_epoch is None
    assert cfg.data.name == "synthetic"


def test_unknown_key_suggests_nearest():
    with pytest.raises(ConfigError, match="did you mean 'optimizer.lr'"):
        load_config("synthetic", ["optimizer.lrr=0.1"])


@pytest.mark.parametrize("override,pattern", [
    ("data.imbalance_ratio=0.5", "data.imbalance_ratio=0.5.*>= 1"),
    ("optimizer.lr=-1", "optimizer.lr=-1.*> 0"),
    ("model.prompt_length=-2", "model.prompt_length=-2.*>= 0"),
    ("epochs=abc", "epochs='abc': expected an integer"),
    ("model.mode=deeep", "did you mean 'deep'"),
    ("loss.gamma_pos=-1", r"loss.gamma_pos=-1.0 .*>= 0"),  # a negative focusing exponent trained silently
    ("loss.tau=-1", r"loss.tau=-1.0 .*>= 0"),  # a negative tau inverts the logit adjustment
    ("loss.noise_mul=-1", r"loss.noise_mul=-1.0 .*>= 0"),
    ("data.few=-1", r"data.few=-1 .*>= 0"),
    ("label=../x", r"label='../x': a label names run directories"),  # compare wrote OUT/../x-s0
    ("label=a/b", "letters, digits and"),
    ("label=sgd:x", "letters, digits and"),
])
def test_bad_values_name_key_value_and_rule(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config("synthetic", [override])


def test_every_preset_loads_and_round_trips(tmp_path):
    assert "synthetic" in list_presets()
    for name in list_presets():
        cfg = load_config(name)
        path = tmp_path / f"{name}.yaml"
        path.write_text(to_yaml(cfg))
        assert load_config(str(path)) == cfg


def test_unknown_preset():
    with pytest.raises(ConfigError, match="did you mean 'synthetic'"):
        load_config("synthetc")
    with pytest.raises(ConfigError, match="did you mean 'synthetic_gcl'"):  # a part of a preset's name
        load_config("gcl")


def test_a_schedule_the_run_never_reaches_is_a_warning_not_silence(capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the presets themselves reach their schedules
        for name in list_presets():
            load_config(name)
    with pytest.warns(UserWarning, match=r"loss.drw_epoch=7 is not before the last epoch \(epochs=2.*never switches on"):
        load_config("synthetic_gcl", ["epochs=2"])
    with pytest.warns(UserWarning, match=r"optimizer.warmup_epochs=3 is longer than the run \(epochs=2\)"):
        load_config("synthetic", ["epochs=2", "optimizer.warmup_epochs=3"])
    from ltlab.cli import main

    assert main(["train", "--config", "synthetic_gcl", "epochs=2", "--out", "/dev/null/x"]) == 2  # refused later
    err = capsys.readouterr().err
    assert err.startswith("warning: loss.drw_epoch=7") and "UserWarning" not in err, err


def test_a_typed_data_key_the_data_set_does_not_read_is_a_warning(capsys):
    """data.imbalance_ratio=10 with places_lt (its lists fix the counts) and data.num_classes=10 with cifar100_lt
    (still CIFAR-100) trained what the files say without a word."""
    import warnings

    from ltlab.config import _CHOICES, _FILES_FIX
    from ltlab.data import TXT_LISTS

    assert set(_FILES_FIX) == set(_CHOICES["data.name"]) - {"synthetic"}  # every data set but the one ltlab makes
    assert {n for n, (keys, _) in _FILES_FIX.items() if "n_max" in keys} == set(TXT_LISTS)
    with pytest.warns(UserWarning) as caught:
        load_config("places_lt", ["data.imbalance_ratio=10", "data.val_per_class=3"])  # val_per_class is read
    assert [str(w.message) for w in caught] == [
        "data.imbalance_ratio=10.0 has no effect with data.name=places_lt: the image lists (data.train_list, "
        "data.test_list) fix the classes, their counts and the test split; leave it out"]
    with pytest.warns(UserWarning, match=r"data.num_classes=10 has no effect with data.name=cifar100_lt: the data set "
                                         r"fixes its classes \(cifar10_lt: 10"):
        load_config("cifar100_lt_ir100", ["data.num_classes=10"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config("imagenet_lt")  # inherits CIFAR's n_max / imbalance_ratio from its base: not typed, no warning
        load_config("synthetic", ["data.num_classes=10", "data.n_max=30"])  # read
    from ltlab.cli import main

    assert main(["train", "--config", "places_lt", "data.n_max=5", "--out", "/dev/null/x"]) == 2  # refused later
    assert capsys.readouterr().err.startswith("warning: data.n_max=5 has no effect with data.name=places_lt")
    # a comparison loads one config per method: the line is printed once
    assert main(["compare", "--config", "places_lt", "data.n_max=5", "--optimizers", "sgd,sam", "--seeds", "1",
                 "--out", "/dev/null/x"]) == 2
    assert capsys.readouterr().err.count("warning: data.n_max=5") == 1
