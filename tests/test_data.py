"""Long-tailed profiles, splits, the synthetic task, and real-benchmark loaders on fake files."""
import pickle

import numpy as np
import pytest
import torch

from ltlab.config import DataConfig
from ltlab.data import build_dataset, class_splits, longtail_counts
from ltlab.errors import ConfigError, DataError


def test_cifar100_lt_counts():
    c100 = longtail_counts(100, 500, 100)
    assert sum(c100) == 10847
    assert {k: len(v) for k, v in class_splits(c100).items()} == {"many": 35, "medium": 35, "few": 30}
    assert sum(longtail_counts(100, 500, 50)) == 12608
    c10 = longtail_counts(100, 500, 10)
    assert sum(c10) == 19573
    assert [len(v) for v in class_splits(c10).values()] == [69, 31, 0]


def test_step_profile_and_bad_ratio():
    assert longtail_counts(4, 100, 10, "step") == [100, 100, 10, 10]
    with pytest.raises(ConfigError, match="imbalance_ratio"):
        longtail_counts(10, 100, 0.5)


def test_gnm_index_convention():
    s = class_splits([1] * 100, convention="gnm_index")
    assert (len(s["many"]), len(s["medium"]), len(s["few"])) == (36, 35, 29)


def test_synthetic_is_deterministic_and_long_tailed(tiny_data_cfg):
    a, b = build_dataset(tiny_data_cfg), build_dataset(tiny_data_cfg)
    assert torch.equal(a.train.images, b.train.images)
    assert a.class_counts == longtail_counts(6, 24, 8)
    assert np.bincount(a.train.targets.numpy()).tolist() == a.class_counts
    assert np.bincount(a.test.targets.numpy()).tolist() == [3] * 6
    assert np.bincount(a.val.targets.numpy()).tolist() == [2] * 6
    assert not torch.equal(a.test.images[:3], a.train.images[:3])
    x, y = a.train[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    other = build_dataset(DataConfig(**{**tiny_data_cfg.__dict__, "seed": 1}))
    assert not torch.equal(other.train.images, a.train.images)


def _write_fake_cifar100(root, per_class_train=500, per_class_test=100):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    ytr = np.repeat(np.arange(100), per_class_train)
    rng.shuffle(ytr)
    xtr = np.zeros((len(ytr), 3072), dtype=np.uint8)
    xtr[:, 0] = ytr  # label written into the first pixel: lets the test check labels survive
    yte = np.repeat(np.arange(100), per_class_test)
    xte = np.zeros((len(yte), 3072), dtype=np.uint8)
    xte[:, 0] = yte
    for name, x, y in [("train", xtr, ytr), ("test", xte, yte)]:
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x, "fine_labels": y.tolist()}, f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f)


@pytest.mark.parametrize("ir,total", [(100, 10847), (50, 12608)])
def test_cifar100_lt_from_fake_files(tmp_path, ir, total):
    _write_fake_cifar100(tmp_path)
    cfg = DataConfig(name="cifar100_lt", root=str(tmp_path), n_max=500, imbalance_ratio=ir, image_size=32)
    b = build_dataset(cfg)
    assert len(b.train) == total and sum(b.class_counts) == total
    assert np.bincount(b.train.targets, minlength=100).tolist() == b.class_counts
    assert all(b.train.images[i][0, 0, 0] == b.train.targets[i] for i in range(0, total, 97))
    # val: 10 per class from the images the LT subset left out (class 0 keeps all 500: none left)
    assert len(b.test) == 10000 and len(b.val) == 99 * 10
    if ir == 100:
        assert [len(b.splits[k]) for k in ("many", "medium", "few")] == [35, 35, 30]
    x, y = b.test[5]
    assert x.shape == (3, 32, 32) and y == b.test.targets[5]


def test_cifar_missing_files_say_where_they_go(tmp_path):
    with pytest.raises(DataError, match="download=true"):
        build_dataset(DataConfig(name="cifar100_lt", root=str(tmp_path / "nope")))


def test_txt_list_dataset(tmp_path):
    from PIL import Image

    lines = []
    for c in range(3):
        for i in range([6, 3, 2][c]):
            rel = f"class{c}/img{i}.png"
            (tmp_path / f"class{c}").mkdir(exist_ok=True)
            Image.fromarray(np.full((20, 20, 3), 40 * c, np.uint8)).save(tmp_path / rel)
            lines.append(f"{rel} {c}")
    (tmp_path / "train.txt").write_text("\n".join(lines))
    (tmp_path / "test.txt").write_text("\n".join(lines[::2]))
    cfg = DataConfig(name="places_lt", root=str(tmp_path), train_list="train.txt", test_list="test.txt",
                     image_size=16, val_per_class=1, augment=False)
    b = build_dataset(cfg)
    assert b.num_classes == 3 and b.class_counts == [5, 2, 1]
    assert len(b.val) == 3 and len(b.test) == len(lines[::2])
    x, y = b.test[0]
    assert x.shape == (3, 16, 16) and y == 0


def _write_list_data(root, train_lines, test_lines):
    from PIL import Image

    for c in range(3):
        (root / f"class{c}").mkdir(exist_ok=True)
        for i in range(6):
            Image.fromarray(np.full((20, 20, 3), 40 * c, np.uint8)).save(root / f"class{c}/img{i}.png")
    (root / "train.txt").write_text("\n".join(train_lines))
    (root / "test.txt").write_text("\n".join(test_lines))


GOOD_LIST = [f"class{c}/img{i}.png {c}" for c in range(3) for i in range([6, 3, 2][c])]


@pytest.mark.parametrize("train, test, words", [
    ([*GOOD_LIST, "class0/img5.png -1"], GOOD_LIST, ["train.txt:12", "class index >= 0", "-1"]),
    ([*GOOD_LIST, "class0/nope.png 0"], GOOD_LIST, ["1 of the 12 images", "class0/nope.png", "remove their lines"]),
    ([], GOOD_LIST, ["data.train_list", "lists no images"]),
    ([line.replace(" 2", " 5") for line in GOOD_LIST], GOOD_LIST, ["3 of the classes 0..5 have no image", "[2, 3, 4]"]),
    (GOOD_LIST, [*GOOD_LIST, "class0/img0.png 7"], ["data.test_list", "label 7", "classes 0..2 only"]),
])
def test_txt_lists_that_would_fail_later_are_refused_up_front(tmp_path, train, test, words):
    # each of these was a raw ValueError, a training-time FileNotFoundError, or a label the head cannot hold
    _write_list_data(tmp_path, train, test)
    cfg = DataConfig(name="places_lt", root=str(tmp_path), train_list="train.txt", test_list="test.txt",
                     image_size=16, val_per_class=1, augment=False)
    with pytest.raises(DataError) as e:
        build_dataset(cfg)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_an_unreadable_image_names_its_file_and_list(tmp_path):
    _write_list_data(tmp_path, GOOD_LIST, GOOD_LIST)
    (tmp_path / "class0/img0.png").write_bytes(b"not a png")
    b = build_dataset(DataConfig(name="places_lt", root=str(tmp_path), train_list="train.txt",
                                 test_list="test.txt", image_size=16, val_per_class=1, augment=False))
    with pytest.raises(DataError, match=r"class0/img0.png \(listed in .*test.txt\) cannot be read as an image"):
        b.test[0]


def test_txt_list_missing_gives_clear_error(tmp_path):
    with pytest.raises(DataError, match="Places_LT_train.txt"):
        build_dataset(DataConfig(name="places_lt", root=str(tmp_path)))


@pytest.mark.parametrize("name", ["synthetic", "cifar100_lt"])
def test_image_lists_for_a_data_set_that_does_not_read_them_are_refused(tmp_path, name):
    """data.val_list=... on the synthetic task trained on without it, silently."""
    cfg = DataConfig(name=name, root=str(tmp_path), val_list="my_val.txt")
    with pytest.raises(ConfigError, match=rf"data.val_list='my_val.txt': data.name={name} does not read image lists "
                                          r"\(only imagenet_lt, places_lt, inat2018 do\)"):
        build_dataset(cfg)
