"""lakeFS's naming rules for repositories, branches, tags and storage namespaces."""

from __future__ import annotations

import re

from .errors import BadRequest

REPOSITORY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{2,62}$")
BRANCH_RE = re.compile(r"^\w[-\w]*$")
NAMESPACE_RE = re.compile(r"^(s3|gs|https?|mem|local|transient)://.*$")
# Git's refname rules, as lakeFS applies them to tags.
_TAG_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def validate_repository_name(name: str) -> None:
    if not REPOSITORY_RE.match(name):
        raise BadRequest(
            f"invalid repository name {name!r}: use 3-63 lower-case letters, digits and hyphens, "
            "starting with a letter or digit"
        )


def validate_branch_name(name: str) -> None:
    if not BRANCH_RE.match(name):
        raise BadRequest(
            f"invalid branch name {name!r}: use letters, digits, '_' and '-', starting with a letter, "
            "digit or '_' (no '/', '.', '~', '^' or spaces)"
        )


def validate_tag_name(name: str) -> None:
    if (
        not name
        or _TAG_FORBIDDEN.search(name)
        or name.startswith(("-", "/", "."))
        or name.endswith(("/", ".", ".lock"))
        or name == "@"
    ):
        raise BadRequest(
            f"invalid tag name {name!r}: no spaces, control characters, '~^:?*[\\', '..', '@{{' or '//', "
            "and it may not start with '-', '/' or '.', nor end with '/', '.' or '.lock'"
        )


def validate_path(path: str | None) -> str:
    if not path:
        raise BadRequest("missing object path: pass a non-empty 'path'")
    if "\x00" in path:
        raise BadRequest(f"invalid object path {path!r}: NUL characters are not allowed")
    return path
