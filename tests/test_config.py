from dataclasses import dataclass, field
from typing import List, Literal, Optional, Tuple

import pytest
import yaml

from diffusion4d.config import ConfigError, config_to_dict, load_config, save_config


@dataclass
class Optim:
    lr: float = 1e-4  # learning rate
    betas: Tuple[float, float] = (0.9, 0.999)  # Adam betas


@dataclass
class Cfg:
    optim: Optim = field(default_factory=Optim)
    steps: int = 10  # optimisation steps
    modes: List[str] = field(default_factory=lambda: ["dynamic", "static"])
    kind: Literal["eps", "v"] = "eps"  # prediction type
    ema: Optional[float] = None  # EMA decay, None = off
    cache: bool = False

    def validate(self):
        if self.steps < 0:
            raise ValueError("steps must be >= 0")


def test_defaults_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 20\noptim:\n  lr: 3.0e-5\n")
    cfg = load_config(Cfg, path, ["optim.betas=[0.8, 0.9]", "kind=v", "ema=0.99", "modes=front,four_view", "cache=true"])
    assert cfg.steps == 20 and cfg.optim.lr == 3e-5 and cfg.optim.betas == (0.8, 0.9)
    assert cfg.kind == "v" and cfg.ema == 0.99 and cfg.modes == ["front", "four_view"] and cfg.cache is True
    assert load_config(Cfg, None, ["ema=null"]).ema is None


def test_save_and_reload_resolved(tmp_path):
    cfg = load_config(Cfg, None, ["steps=7"])
    save_config(cfg, tmp_path / "out" / "config.yaml")
    data = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert data == config_to_dict(cfg)
    assert load_config(Cfg, tmp_path / "out" / "config.yaml") == cfg


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lrr=1", "valid keys under optim: betas, lr"),
        ("steps=1.5", "expected an integer"),
        ("kind=x0", "is not one of"),
        ("cache=maybe", "true/false"),
        ("steps=-1", "steps must be >= 0"),
        ("novalue", "key.sub=value"),
        # a list whose item holds a list: unquoted, YAML cannot read it; it must not be split at commas
        ("modes=[a.b=1,c.d=[2,3]]", "not valid YAML.*quote items"),
    ],
)
def test_errors_are_clear(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Cfg, None, [override])


def test_quoted_items_may_hold_brackets_and_commas():
    cfg = load_config(Cfg, None, ['modes=["a.b=1","c.d=[2,3]"]'])
    assert cfg.modes == ["a.b=1", "c.d=[2,3]"]


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, "/nonexistent.yaml")


def test_ema_power_outside_0_1_is_a_clear_error():
    from diffusion4d.config import ConfigError
    from diffusion4d.train.train_config import TrainConfig

    assert load_config(TrainConfig, None, ["ema_power=0.8"]).ema_power == 0.8
    with pytest.raises(ConfigError, match="ema_power must be in"):
        load_config(TrainConfig, None, ["ema_power=1.5"])
