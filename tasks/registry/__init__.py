"""Model registry in a lakeFS models repository: numbered versions, movable aliases, lineage, verified loads.

A model version is one commit holding ``models/<model>/<version>/``: the weights
(``model.safetensors``, never pickle), the model card (``model_card.json``, the lineage record) and any
artifacts (plots, metrics JSON). Two kinds of lakeFS tag name commits:

- ``<model>-v<N>``: the immutable version tag. Creating it is the atomic claim of the number: lakeFS
  refuses an existing tag with 409, so two concurrent registrations never share a version.
- ``<model>-champion`` / ``<model>-challenger``: movable aliases, re-created (``force``) on a version's
  commit only after that version's artifacts verified against their SHA-256s.

Registration writes on a branch of its own (``register-<model>-<run>``), commits, claims the version
tag on that commit, and only then merges into ``main``; a failure before the tag leaves no version, no
change on ``main`` and the branch kept for inspection. Loading reads every object at the resolved commit
ID (so an alias moved meanwhile cannot mix two versions) and refuses weights whose SHA-256 differs
from the card's. All functions take the ``lakefs.Client`` as ``client=`` and reach lakeFS through
``tasks.versioning``.

=========================  ===========================================================
``tasks.registry.card``    the model card (lineage record), file and tag names
``tasks.registry.write``   ``register_model``, ``set_alias``
``tasks.registry.read``    ``show_model``, ``load_model``, ``read_artifact``, ``list_models``
=========================  ===========================================================
"""

from __future__ import annotations

from tasks.registry.card import (
    ALIASES,
    CARD_FILE,
    LATEST,
    MODELS_REPOSITORY,
    REFERENCE_ARTIFACT,
    REQUIRED_LIBRARIES,
    WEIGHTS_FILE,
    LoadedModel,
    ModelCard,
    ModelLineage,
    ModelVersion,
    RegisteredModel,
    collect_library_versions,
    current_code_version,
)
from tasks.registry.read import get_alias, list_models, load_model, read_artifact, show_model
from tasks.registry.write import register_model, set_alias

__all__ = [
    "ALIASES",
    "CARD_FILE",
    "LATEST",
    "MODELS_REPOSITORY",
    "REFERENCE_ARTIFACT",
    "REQUIRED_LIBRARIES",
    "WEIGHTS_FILE",
    "LoadedModel",
    "ModelCard",
    "ModelLineage",
    "ModelVersion",
    "RegisteredModel",
    "collect_library_versions",
    "current_code_version",
    "get_alias",
    "list_models",
    "load_model",
    "read_artifact",
    "register_model",
    "set_alias",
    "show_model",
]
