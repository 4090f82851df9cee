"""The deployment files, read as ``prefect deploy`` reads them, without a server: the same
deployments in every environment's file, and no template that deploying cannot fill."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect_stack import ROOT

FILES = [ROOT / "prefect.yaml", ROOT / "deployments" / "production.yaml"]
PLACEHOLDER = re.compile(r"{{\s*([\w.\-\[\]$]+)\s*}}")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def _load(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_deployment_file_is_valid_and_fills_every_template_it_holds(path: Path) -> None:
    from prefect.cli.deploy._models import PrefectYamlModel

    config = _load(path)
    PrefectYamlModel.model_validate(config)  # what `prefect deploy` validates first
    step_ids = {
        step_config.get("id")
        for step in config.get("build") or []
        for step_config in step.values()
        if isinstance(step_config, dict)
    }
    for deployment in config["deployments"]:
        for text in _strings(deployment) + _strings(config.get("pull")):
            for name in PLACEHOLDER.findall(text):
                # An environment variable left unset stays in the deployment as written,
                # and a missing Prefect variable becomes "": only build-step outputs,
                # which deploying always fills, are used.
                assert name.split(".")[0] in step_ids, (path.name, deployment["name"], text)
        assert "{{" not in deployment["work_pool"]["name"]


def test_every_environment_deploys_the_same_flows() -> None:
    def shape(path: Path) -> dict[str, Any]:
        return {
            d["name"]: (d["entrypoint"], sorted(d.get("parameters") or {}), d.get("tags"))
            for d in _load(path)["deployments"]
        }

    local, *others = FILES
    for other in others:
        assert shape(other) == shape(local), other.name
