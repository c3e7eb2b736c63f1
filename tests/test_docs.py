"""The README documents the two commands first and every parameter the schema accepts."""

from pathlib import Path

from monitor_utils import config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_two_commands_come_first():
    first_block = README.split("```")[1]
    assert "make run" in first_block and "make test" in first_block


def test_every_parameter_is_documented():
    for name, spec in config.SCHEMA.items():
        names = [f"{name}.{k}" for k in spec.params] if isinstance(spec, config.Section) else [name]
        for n in names:
            assert f"| `{n}` |" in README, f"README lacks parameter {n}"
