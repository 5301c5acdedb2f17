"""The bounded YAML loader (``t9k_em_core.bounded_yaml``) refuses alias bombs, recursive aliases,
deep and large documents before building them, and reads everything the SDK writes; the SDK's
readers of run folders (``fileio``, ``metric_file``) go through it."""
from __future__ import annotations

import time

import pytest
import yaml

from t9k_em_core import bounded_yaml, fileio, metric_file
from t9k_em_core.bounded_yaml import YamlLimitError, YamlLimits


def laughs(levels: int, fan: int = 10) -> str:
    """The "billion laughs" document: ``fan ** levels`` leaves from a few hundred bytes."""
    lines = ["l0: &l0 [" + ", ".join(["lol"] * fan) + "]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 7, 9])
def test_alias_bomb_is_refused_quickly(levels):
    text = laughs(levels)
    assert len(text) < 600
    start = time.perf_counter()
    with pytest.raises(YamlLimitError, match="expands to more than 1000000 nodes"):
        bounded_yaml.load(text)
    assert time.perf_counter() - start < 1.0


def test_small_aliases_are_fine():
    """PyYAML's dumper writes anchors for an object used twice: such files still load."""
    shared = [1, 2, 3]
    text = yaml.dump({"a": shared, "b": shared}, Dumper=yaml.SafeDumper)
    assert "&id001" in text
    assert bounded_yaml.load(text) == {"a": [1, 2, 3], "b": [1, 2, 3]}
    assert bounded_yaml.load("<<: &base {x: 1}\ny: 2\n") == {"x": 1, "y": 2}


@pytest.mark.parametrize("text, problem", [
    ("&a [*a]", "refers to itself"),
    ("a: &a {b: *a}", "refers to itself"),
    ("[" * 101 + "]" * 101, "nested deeper than 100"),
    ("x" * 65, "larger than 64 bytes"),
])
def test_limits_are_named(text, problem):
    with pytest.raises(YamlLimitError, match=problem):
        bounded_yaml.load(text, YamlLimits(max_bytes=64 if len(text) == 65 else 1 << 20))


def test_deeper_than_libyaml_allows_is_a_yaml_error():
    with pytest.raises(yaml.YAMLError):
        bounded_yaml.load("[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize("text", ["a: " + "1" * 5000, "!!python/object/apply:os.system [id]",
                                  "{[1]: 2}", "--- 1\n--- 2\n"])
def test_unbuildable_documents_are_yaml_errors(text):
    with pytest.raises(yaml.YAMLError):
        bounded_yaml.load(text)


def test_expansion_counts_each_use():
    ten = "a: &a [" + ", ".join("x" * 10) + "]\nb: [" + ", ".join(["*a"] * 9) + "]\n"
    assert len(bounded_yaml.load(ten, YamlLimits(max_nodes=200))["b"]) == 9
    with pytest.raises(YamlLimitError):
        bounded_yaml.load(ten, YamlLimits(max_nodes=100))


def test_scaled_limits_admit_a_long_plain_document():
    entries = "".join(f"- {{value: {{loss: {i}}}, sequence: {{step: {i}}}}}\n" for i in range(3000))
    tight = YamlLimits(max_nodes=1000)
    with pytest.raises(YamlLimitError):
        bounded_yaml.load(entries, tight)
    assert len(bounded_yaml.load(entries, tight.scaled_to(len(entries)))) == 3000


def test_run_folder_readers_are_bounded(tmp_path):
    """``fileio.read_yaml`` (what ``load_run`` / ``em describe`` read downloaded files with) and
    ``metric_file.read_entries``'s YAML fallback refuse a bomb, never expand it."""
    (tmp_path / "hyperparameters.yaml").write_text(laughs(8))
    with pytest.raises(YamlLimitError):
        fileio.read_yaml(str(tmp_path / "hyperparameters.yaml"))
    metrics = tmp_path / "train.yaml"
    metrics.write_text("- &e {value: {loss: 1}, sequence: {step: 1, epoch: null, timestamp: x}}\n"
                       + laughs(8).replace("l0:", "- l0:").replace("\nl", "\n  l"))
    start = time.perf_counter()
    assert len(metric_file.read_entries(str(metrics))) <= 1  # the bomb is dropped like a bad tail
    assert time.perf_counter() - start < 2.0
