"""lakeFS's naming rules for repositories, branches, tags and storage namespaces."""

from __future__ import annotations

import re

from .errors import BadRequest

# Go's regexp (lakeFS's) has ASCII-only \w and a `$` that is the end of the text; Python's `$` also
# matches before a trailing newline and its \w takes any Unicode letter, so: fullmatch, explicit ASCII.
REPOSITORY_RE = re.compile(r"[a-z0-9][a-z0-9-]{2,62}", re.ASCII)
BRANCH_RE = re.compile(r"[A-Za-z0-9_][-A-Za-z0-9_]*", re.ASCII)
NAMESPACE_RE = re.compile(r"(s3|gs|https?|mem|local|transient)://.*", re.ASCII | re.DOTALL)
# Git's refname rules, as lakeFS applies them to tags.
_TAG_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")


def validate_repository_name(name: str) -> None:
    if not isinstance(name, str) or not REPOSITORY_RE.fullmatch(name):
        raise BadRequest(
            f"invalid repository name {name!r}: use 3-63 lower-case letters, digits and hyphens, "
            "starting with a letter or digit"
        )


def validate_branch_name(name: str) -> None:
    if not isinstance(name, str) or not BRANCH_RE.fullmatch(name):
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


MAX_NAMESPACE = 1024


def validate_namespace(namespace: str, scheme: str, example: str) -> None:
    """A storage namespace this server can write under: ``<scheme>://`` and a clean, non-empty path
    (no control characters, no empty, '.' or '..' segments), at most 1,024 characters.
    A namespace that could never hold data, or that spells another one differently, is refused here,
    at creation, rather than failing at the first upload."""

    def fail(problem: str) -> BadRequest:
        return BadRequest(
            f"invalid storage namespace {namespace[:200]!r}: {problem}; this server stores data in "
            f"{scheme}:// (e.g. {example!r})"
        )

    if len(namespace) > MAX_NAMESPACE:
        raise fail(f"longer than {MAX_NAMESPACE} characters")
    if not namespace.isascii() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in namespace):
        raise fail("only printable ASCII characters are allowed")
    if not NAMESPACE_RE.fullmatch(namespace) or not namespace.startswith(f"{scheme}://"):
        raise fail(f"it must start with {scheme}://")
    rest = namespace[len(scheme) + 3 :]
    if rest.endswith("/"):  # accepted, as by lakeFS; an alias of another repository's is refused later
        rest = rest[:-1]
    if not rest or any(part in ("", ".", "..") for part in rest.split("/")):
        raise fail("it needs a path with no empty, '.' or '..' segments")
