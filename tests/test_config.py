"""Config files, overrides and two-phase validation against installed plugins."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from qpcore import ConfigError, ConfigFileError
from qpcore.config import RunConfig
from qpcore.config_io import apply_overrides, dump_yaml, load_run_config, parse_config_text
from qpcore.registry import Registry
from qpcore.validate import resolve_config, unresolved_components

GOOD = """\
data: {name: test_rows, count: 4}
model:
  backbone: test_features
  head: {hidden: [8, 4], dropout: 0.1}
loss: {name: focal, gamma: 1.5}
optimizer: adamw
scheduler: {name: cosine, warmup_epochs: 2}
trainer: {epochs: 3, batch_size: 4}
"""


def write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def issues_of(err: pytest.ExceptionInfo[ConfigError]) -> dict[str, tuple[str, int | None]]:
    return {i.path: (i.message, i.line) for i in err.value.issues}


def test_good_config_resolves_with_every_default_filled(tmp_path: Path, registry: Registry) -> None:
    cfg = load_run_config(write(tmp_path, GOOD), registry=registry)
    assert cfg.loss.name == "focal"
    assert cfg.loss.params.gamma == 1.5  # type: ignore[attr-defined]
    assert cfg.optimizer.params.weight_decay == 1e-2  # type: ignore[attr-defined]
    assert cfg.scheduler is not None and cfg.scheduler.params.warmup_epochs == 2  # type: ignore[attr-defined]
    dumped = cfg.to_dict()
    assert dumped["loss"]["alpha"] == 1.0  # the focal default, written out
    assert dumped["optimizer"]["lr"] == 1e-3
    assert dumped["model"]["backbone"] == {"name": "test_features", "width": 4}
    assert dumped["trainer"]["early_stopping"]["monitor"] == "val_loss"


def test_resolved_config_round_trips(tmp_path: Path, registry: Registry) -> None:
    cfg = load_run_config(write(tmp_path, GOOD), registry=registry)
    again = resolve_config(yaml.safe_load(dump_yaml(cfg)), registry)
    assert again.to_dict() == cfg.to_dict()


def test_json_config_is_accepted(tmp_path: Path, registry: Registry) -> None:
    import json

    path = write(tmp_path, json.dumps(yaml.safe_load(GOOD)), "run.json")
    assert load_run_config(path, registry=registry).loss.name == "focal"


def test_all_errors_are_collected_with_paths_and_lines(tmp_path: Path, registry: Registry) -> None:
    text = """\
data: test_rows
model: {backbone: test_features}
loss: {name: focall}
optimizer: {name: adam, lr: -1, momentum: 0.9}
scheduler: {name: reduce_on_plateau, monitor: val_accuracy}
trainer:
  epochs: many
  early_stopping: {monitor: val_r2}
monitors: [progres]
colour: blue
"""
    with pytest.raises(ConfigError) as err:
        load_run_config(write(tmp_path, text), registry=registry)
    found = issues_of(err)
    assert found["trainer.epochs"] == (
        "Input should be a valid integer, unable to parse string as an integer",
        7,
    )
    assert found["colour"] == ("Extra inputs are not permitted", 10)
    assert found["trainer.early_stopping.monitor"][1] == 8
    assert "unknown metric 'val_r2'" in found["trainer.early_stopping.monitor"][0]
    message, line = found["loss.name"]
    assert line == 3 and message.startswith("Unknown loss 'focall'. Did you mean 'focal'?")
    assert found["optimizer.lr"] == ("Input should be greater than 0", 4)
    assert found["optimizer.momentum"] == ("Extra inputs are not permitted", 4)
    assert "unknown metric 'val_accuracy'" in found["scheduler.monitor"][0]
    assert found["monitors.0.name"][0].startswith(
        "Unknown monitor 'progres'. Did you mean 'progress'?"
    )
    text = str(err.value)
    assert text.splitlines()[0] == f"8 config errors in {tmp_path / 'run.yaml'}:"
    assert "  line 7: trainer.epochs: Input should be a valid integer" in text


def test_component_names_are_checked_for_syntax(registry: Registry) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_config({"loss": "Focal Loss"}, registry)
    assert "loss.name" in issues_of(err)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "holds no settings"),
        ("- a\n- b\n", "must be a mapping of keys, not a list"),
        ("loss: {name: mse\ntrainer: 1\n", ":2: invalid YAML"),
    ],
)
def test_unreadable_files_give_one_clear_message(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigFileError, match=message):
        load_run_config(write(tmp_path, text))


def test_json_syntax_error_has_a_line() -> None:
    with pytest.raises(ConfigFileError, match=r"run.json:3: invalid JSON"):
        parse_config_text('{\n "loss": "mse",\n }', "run.json")


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="no such config file"):
        load_run_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigFileError, match="is a folder"):
        load_run_config(tmp_path)


def test_overrides_set_nested_keys_and_expand_bare_names() -> None:
    data = {"scheduler": "reduce_on_plateau", "monitors": ["a", {"name": "b"}]}
    apply_overrides(
        data,
        [
            "trainer.epochs=5",
            "scheduler.patience=3",
            "monitors.0.level=high",
            "loss=focal",
            "model.head.hidden=[8, 4]",
            "trainer.grad_clip=null",
        ],
    )
    assert data == {
        "scheduler": {"name": "reduce_on_plateau", "patience": 3},
        "monitors": [{"name": "a", "level": "high"}, {"name": "b"}],
        "trainer": {"epochs": 5, "grad_clip": None},
        "loss": "focal",
        "model": {"head": {"hidden": [8, 4]}},
    }


def test_bad_overrides_are_config_errors() -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides({"monitors": []}, ["epochs", "monitors.3=x", "=1"])
    assert [i.path for i in err.value.issues] == ["--set", "monitors.3", "--set"]


def test_overrides_apply_before_validation(tmp_path: Path, registry: Registry) -> None:
    cfg = load_run_config(
        write(tmp_path, GOOD), ["trainer.epochs=7", "loss.gamma=0.5"], registry=registry
    )
    assert cfg.trainer.epochs == 7
    assert cfg.loss.params.gamma == 0.5  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as err:
        load_run_config(write(tmp_path, GOOD), ["trainer.epochs=0"], registry=registry)
    assert issues_of(err)["trainer.epochs"] == ("Input should be greater than or equal to 1", None)
    assert str(err.value.issues[0]).startswith("--set trainer.epochs: ")


def test_scheduler_may_be_off(registry: Registry) -> None:
    cfg = resolve_config(
        {"data": "test_rows", "model": {"backbone": "test_features"}, "scheduler": None}, registry
    )
    assert cfg.scheduler is None


def test_packaged_default_is_shown_as_far_as_components_exist() -> None:
    # Only kinds with no plugin at all are tolerated: here, backbones switched off.
    registry = Registry.from_entrypoints(disabled={"qp_backbones"})
    cfg = load_run_config(None, registry=registry, strict=False)
    assert cfg.loss.name == "combined"
    assert cfg.loss.params is not None
    assert cfg.to_dict()["optimizer"]["betas"] == [0.9, 0.999]
    assert cfg.to_dict()["data"]["val_fraction"] == 0.15  # the synthetic dataset, resolved
    assert cfg.model.backbone.name == "vectorizer"  # not installed here, kept as written
    assert cfg.to_dict()["model"]["backbone"] == {"name": "vectorizer"}
    assert unresolved_components(cfg) == [
        ("model.backbone", "backbone", "vectorizer"),
        ("model.features.0", "backbone", "image_stats"),
    ]


def test_run_config_defaults_need_no_plugins() -> None:
    cfg = RunConfig()
    assert cfg.trainer.batch_size == 16
    assert cfg.model.head.hidden == [1024, 512, 256, 128]
    assert cfg.scheduler is not None and cfg.scheduler.name == "reduce_on_plateau"


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "loss: mse\ntrainer: {epochs: 3}\nloss: mae\n")
    with pytest.raises(
        ConfigFileError, match=r"run.yaml:3: invalid YAML.*duplicate key 'loss' \(first at line 1\)"
    ):
        load_run_config(path)


def test_infinite_values_are_refused(registry: Registry) -> None:
    data = {
        "data": "test_rows",
        "model": {"backbone": "test_features"},
        "optimizer": {"name": "adam", "lr": float("inf")},
        "trainer": {"grad_clip": float("inf")},
    }
    with pytest.raises(ConfigError) as err:
        resolve_config(data, registry)
    assert set(issues_of(err)) == {"optimizer.lr", "trainer.grad_clip"}


def test_warmup_must_leave_epochs_to_the_scheduler(registry: Registry) -> None:
    data = {
        "data": "test_rows",
        "model": {"backbone": "test_features"},
        "scheduler": {"name": "cosine", "warmup_epochs": 5},
        "trainer": {"epochs": 5},
    }
    with pytest.raises(ConfigError) as err:
        resolve_config(data, registry)
    assert issues_of(err)["scheduler.warmup_epochs"][0].startswith(
        "must be less than trainer.epochs (5)"
    )


def test_one_mistake_gives_one_error_and_case_insensitive_hints(registry: Registry) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_config({"loss": "MSE", "optimizer": "AdamW"}, registry)
    found = issues_of(err)
    assert list(found) == ["loss.name", "optimizer.name"]  # phase 2 does not repeat them
    with pytest.raises(ConfigError) as err:
        resolve_config(
            {"loss": "mse_loss", "data": "test_rows", "model": {"backbone": "test_features"}},
            registry,
        )
    assert "Did you mean 'mse'?" in issues_of(err)["loss.name"][0]
    with pytest.raises(ConfigError) as err:
        resolve_config({"loss": 3}, registry)
    assert issues_of(err)["loss"][0] == (
        "expected a component name, or a mapping with 'name' and its params"
    )


def test_set_numbers_into_text_fields(tmp_path: Path, registry: Registry) -> None:
    cfg = load_run_config(write(tmp_path, GOOD), ["output.name=2024"], registry=registry)
    assert cfg.output.name == "2024"


def test_third_party_scheduler_metric_param_is_checked(
    tmp_path: Path, registry: Registry, on_path: object
) -> None:
    from conftest import make_distribution

    plugin = """
from qpcore import SchedulerParams, SchedulerSpec, hookimpl

class WatchParams(SchedulerParams):
    watch: str = "val_loss"

@hookimpl
def qp_register_schedulers():
    return [SchedulerSpec("watcher", lambda o, p, c: None, WatchParams, metric_param="watch")]
"""
    on_path(
        make_distribution(
            tmp_path / "d", "qp-watch", "1.0", {"qp_watch": plugin}, {"qp_watch": "qp_watch"}
        )
    )  # type: ignore[operator]
    from qpcore.registry import default_registry

    data = {
        "data": "test_rows",
        "model": {"backbone": "test_features"},
        "scheduler": {"name": "watcher", "watch": "val_f1"},
    }
    with pytest.raises(ConfigError) as err:
        resolve_config(data, default_registry())
    assert "unknown metric 'val_f1'" in issues_of(err)["scheduler.watch"][0]
    data["scheduler"]["watch"] = "val_pearson"  # type: ignore[index]
    assert resolve_config(data, default_registry()).scheduler.params.watch == "val_pearson"  # type: ignore[union-attr,attr-defined]


def test_schema_accepts_good_configs_and_rejects_bad_ones(
    tmp_path: Path, registry: Registry
) -> None:
    import jsonschema

    from qpcore.schema import config_schema

    schema = config_schema(registry)
    validator = jsonschema.Draft202012Validator(schema)
    good = load_run_config(write(tmp_path, GOOD), registry=registry).to_dict()
    assert list(validator.iter_errors(good)) == []
    assert list(validator.iter_errors(yaml.safe_load(GOOD))) == []
    bad = yaml.safe_load(GOOD)
    bad["loss"]["gammma"] = 2
    bad["trainer"]["epochs"] = 0
    assert len(list(validator.iter_errors(bad))) == 2
