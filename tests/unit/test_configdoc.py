"""docs/CONFIGURATION.md is generated from the Settings object and kept up to date."""

from __future__ import annotations

from tests.conftest import repo_root
from zapjobs_sse.configdoc import configuration_reference
from zapjobs_sse.settings import env_name, setting_fields

REGENERATE = "python -m zapjobs_sse.configdoc > docs/CONFIGURATION.md"


def test_configuration_reference_is_up_to_date() -> None:
    stored = (repo_root() / "docs" / "CONFIGURATION.md").read_text("utf-8")
    assert stored == configuration_reference(), f"out of date: run `{REGENERATE}`"


def test_every_setting_has_flag_env_variable_and_meaning() -> None:
    reference = configuration_reference()
    for f in setting_fields():
        row = next(line for line in reference.splitlines() if f"`{env_name(f.name)}`" in line)
        if f.metadata["secret"]:
            assert "environment only" in row  # secrets are never command-line flags
        else:
            assert f"`--{f.name.replace('_', '-')}" in row
        assert str(f.metadata["help"]).replace("|", "\\|") in row
