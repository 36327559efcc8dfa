"""The Ray Serve app: an ingress (FastAPI) and one model deployment per live version.

The classes here stay thin: routing (``serving.routing``), statistics and the SLO gate
(``serving.stats``), the control plane (``serving.control``), model loading (``serving.predictor``)
and inference logging (``serving.inference_log``) are plain Python, tested without Ray.

Topology: the ingress is Serve application ``<app>`` on the HTTP route ``/``; every live model version
is an application of its own, ``<app>-<model>-<ref>``, without an HTTP route. The ingress reaches a
version through a deployment handle named in the routing table, so deploying a challenger or retiring a
champion never restarts the ingress or the other version.

=========================  ===================================================================
``serving.ingress``        ``Ingress``: HTTP API, contract check, routing, statistics, the log
``serving.model_server``   ``ModelServer``: one verified version, batched predictions
``serving.app``            the builders Serve config files name (``serving.app:build_ingress``)
=========================  ===================================================================
"""

from typing import Any

from infra.settings import ServingSettings
from serving.ingress import INGRESS_DEPLOYMENT, Ingress, ingress_app
from serving.model_server import MODEL_DEPLOYMENT, ModelServer, model_app, model_app_name
from serving.routing import Route

__all__ = [
    "INGRESS_DEPLOYMENT",
    "MODEL_DEPLOYMENT",
    "Ingress",
    "ModelServer",
    "build_ingress",
    "build_model",
    "ingress_app",
    "model_app",
    "model_app_name",
]


def build_ingress(args: dict[str, Any]):
    """``import_path: serving.app:build_ingress``; args are ``ServingSettings`` fields (env: the rest)."""
    settings = ServingSettings(**args)
    champion = Route(
        app=model_app_name(settings.app_name, settings.model_name, settings.initial_ref),
        model_name=settings.model_name,
        version=settings.initial_ref,
        role="champion",
        weight=1.0,
    )
    return ingress_app(settings, [champion])


def build_model(args: dict[str, Any]):
    """``import_path: serving.app:build_model``; serves ``initial_ref`` (or ``ref``) of the model."""
    args = dict(args)
    ref = args.pop("ref", None)
    settings = ServingSettings(**args)
    return model_app(settings, ref or settings.initial_ref)
