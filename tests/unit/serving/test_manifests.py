"""The Serve config and the KubeRay RayService manifest: valid, identical, and buildable offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from infra.settings import ServingSettings

ROOT = Path(__file__).resolve().parents[3]
SERVE_CONFIG = ROOT / "infra" / "ray" / "serve_config.yaml"
RAYSERVICE = ROOT / "infra" / "ray" / "rayservice.yaml"


def test_serve_config_is_valid_for_ray_serve_and_every_arg_is_a_setting():
    from ray.serve.schema import ServeDeploySchema

    config = yaml.safe_load(SERVE_CONFIG.read_text())
    schema = ServeDeploySchema.model_validate(config)
    names = [application.name for application in schema.applications]
    assert names == ["lockgate", "lockgate-loans-mlp-champion"]
    for application in config["applications"]:
        args = {key: value for key, value in application["args"].items() if key != "ref"}
        ServingSettings(**args)  # unknown keys would be silently ignored by extra="ignore": check names too
        assert set(args) <= set(ServingSettings.model_fields), set(args) - set(ServingSettings.model_fields)


def test_rayservice_embeds_the_same_serve_config():
    documents = list(yaml.safe_load_all(RAYSERVICE.read_text()))
    service = next(d for d in documents if d["kind"] == "RayService")
    assert service["apiVersion"] == "ray.io/v1"
    assert yaml.safe_load(service["spec"]["serveConfigV2"]) == yaml.safe_load(SERVE_CONFIG.read_text())
    import ray

    assert service["spec"]["rayClusterConfig"]["rayVersion"] == ray.__version__
    workers = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
    assert workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]


def test_the_builders_named_in_the_config_build_applications_without_a_cluster():
    from serving.app import build_ingress, build_model, model_app_name

    config = yaml.safe_load(SERVE_CONFIG.read_text())
    ingress, model = config["applications"]
    assert ingress["import_path"] == "serving.app:build_ingress"
    assert model["import_path"] == "serving.app:build_model"
    assert build_ingress(ingress["args"]) is not None
    application = build_model(model["args"])
    options = application._bound_deployment._deployment_config
    assert options.autoscaling_config.max_replicas == 16
    # The ingress routes to the model application by the name the config gives it.
    settings = ServingSettings(**{k: v for k, v in ingress["args"].items()})
    assert model_app_name(settings.app_name, settings.model_name, settings.initial_ref) == model["name"]


def test_autoscaling_range_is_checked():
    with pytest.raises(ValueError, match="autoscaling_max_replicas"):
        ServingSettings(model_replicas=4, autoscaling_max_replicas=2)
