"""The install step: `make test` puts the Lightning and Hugging Face extras beside the torch it
pins (never replacing it), pyproject declares the extras, and the core imports without them."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import requires, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


def _makefile_pins() -> tuple[Requirement, list[Requirement]]:
    text = (ROOT / "Makefile").read_text()
    torch_pin = Requirement(re.search(r"^TORCH_PIN := (\S+)$", text, re.M).group(1))
    extras = [Requirement(p) for p in re.search(r"^EXTRAS_PINS := (.+)$", text, re.M).group(1).split()]
    return torch_pin, extras


def _installed(name: str) -> Version:
    return Version(Version(version(name)).base_version)  # 2.13.0+cpu -> 2.13.0


def test_make_test_installs_the_pinned_extras_beside_its_pinned_torch():
    torch_pin, extras = _makefile_pins()
    assert str(torch_pin) == "torch==2.13.0"
    assert torch_pin.specifier.contains(_installed("torch")), f"torch {version('torch')} replaced {torch_pin}"
    for pin in extras:
        assert pin.specifier.contains(_installed(pin.name)), f"{pin.name} {version(pin.name)} is not {pin}"
    recipe = (ROOT / "Makefile").read_text().split("$(TEST_STAMP): ")[1].split("\n\n")[0]
    assert "-e '.[test,lightning,hf]' $(TORCH_PIN) $(EXTRAS_PINS)" in recipe  # one resolve, torch held
    # Each installed extra's own demand on torch is met by the torch that stayed.
    torch_now = Version(version("torch").split("+")[0])
    for package in ("lightning", "pytorch-lightning", "torchmetrics", "transformers", "accelerate"):
        for line in requires(package) or []:
            req = Requirement(line)
            if req.name == "torch" and (req.marker is None or req.marker.evaluate({"extra": ""})):
                assert req.specifier.contains(torch_now, prereleases=True), f"{package} wants {req}"


def test_pyproject_declares_the_extras_and_the_pins_satisfy_them():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {"lightning", "hf", "timm", "torchvision"} <= set(extras)
    declared = {Requirement(r).name: Requirement(r) for name in ("lightning", "hf") for r in extras[name]}
    assert set(declared) == {"lightning", "transformers", "accelerate", "datasets"}
    _, pins = _makefile_pins()
    for pin in pins:
        wanted = declared[pin.name]
        assert wanted.specifier.contains(str(pin.specifier).lstrip("=")), f"{pin} outside {wanted}"
    assert [Requirement(r).name for r in extras["torchvision"]] == ["torchvision"]
    assert [Requirement(r).name for r in extras["timm"]] == ["timm"]


_BLOCKED = ("lightning", "pytorch_lightning", "lightning_fabric", "transformers", "accelerate", "timm", "torchvision")
_WITHOUT_EXTRAS = f"""
import importlib, importlib.abc, pkgutil, sys

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {_BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Missing())
import selectivity
optional = ("selectivity.integrations.lightning", "selectivity.integrations.hf")
skip = (*optional, "selectivity.__main__")  # __main__ runs the command line
names = [m.name for m in pkgutil.walk_packages(selectivity.__path__, "selectivity.") if m.name not in skip]
for name in names:
    importlib.import_module(name)
assert "selectivity.integrations" in names and "selectivity.integrations.common" in names
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {_BLOCKED!r})
assert not loaded, loaded
for name in optional:
    try:
        importlib.import_module(name)
    except ImportError as err:
        print(err)
    else:
        raise AssertionError(name + " imported without its extra")
"""


def test_the_core_imports_without_any_extra_and_each_integration_names_its_extra():
    done = subprocess.run([sys.executable, "-c", _WITHOUT_EXTRAS], capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == [
        "selectivity.integrations.lightning needs the 'lightning.pytorch' package, which is not installed: "
        "pip install 'selectivity[lightning]'",
        "selectivity.integrations.hf needs the 'transformers' package, which is not installed: "
        "pip install 'selectivity[hf]'",
    ]
