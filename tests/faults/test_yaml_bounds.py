"""YAML that would cost without bound: alias bombs, huge files, huge values in error messages."""

from __future__ import annotations

import pytest
import yaml

from selectivity.cli import main
from selectivity.safe_yaml import MAX_BYTES, UnsafeYaml, load_yaml, short_repr

BOMB = """claims:
  - id: lol
    statement: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
    metric: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
    group: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
    test: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
    source: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
    where: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
    margin: [*f, *f, *f, *f, *f, *f, *f, *f, *f]
"""


def _sweep(tmp_path):
    """A sweep directory with a results table of two alphas x two seeds, enough for a report."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    rows = ["alpha,seed,status,model,test_acc,mean_si"] + [f"{a},{s},completed,resnet_demo,0.5,0.2"
                                                           for a in (-1.0, 0.0) for s in (0, 1)]
    (sweep / "results.csv").write_text("\n".join(rows) + "\n")
    return sweep


def test_an_alias_is_refused_before_anything_is_built():
    with pytest.raises(UnsafeYaml, match=r"line 4: YAML aliases \(\*a\) are not accepted"):
        load_yaml(BOMB, "claims file x")
    assert isinstance(UnsafeYaml("x"), yaml.YAMLError)  # callers that catch YAML errors catch it
    assert load_yaml("a: &x 1\nb: 2") == {"a": 1, "b": 2}  # an anchor alone expands nothing


def test_a_report_with_an_alias_bomb_in_its_claims_is_one_line_exit_2(tmp_path, capsys):
    claims = tmp_path / "bomb.yaml"
    claims.write_text(BOMB)
    sweep = _sweep(tmp_path)
    assert main(["report", str(sweep), "--claims", str(claims)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "aliases" in err and len(err) < 400


def test_a_config_with_an_alias_bomb_is_refused(tmp_path, capsys):
    config = tmp_path / "bomb.yaml"
    config.write_text("model: &m {name: resnet_demo}\ndata: *m\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "aliases" in err
    assert not (tmp_path / "run").exists()


def test_a_file_too_long_is_refused_by_its_size(tmp_path, capsys):
    claims = tmp_path / "big.yaml"
    claims.write_text("claims:\n" + "  - {id: c, statement: s, metric: m, group: 1, test: less}\n" * 30_000)
    assert claims.stat().st_size > MAX_BYTES
    sweep = _sweep(tmp_path)
    assert main(["report", str(sweep), "--claims", str(claims)]) == 2
    err = capsys.readouterr().err.strip()
    assert "MB: at most 1 MB of YAML is read" in err and len(err.splitlines()) == 1


def test_an_error_never_quotes_a_huge_value_whole(tmp_path, capsys):
    claims = tmp_path / "long.yaml"
    claims.write_text(yaml.safe_dump({"claims": [{"id": "c", "statement": "s", "metric": "m", "group": -1,
                                                  "test": "x" * 200_000}]}))
    sweep = _sweep(tmp_path)
    assert main(["report", str(sweep), "--claims", str(claims)]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown test" in err and "(200002 characters)" in err and len(err) < 500
    assert short_repr(list(range(1000))) == "<list of 1000 items>"
