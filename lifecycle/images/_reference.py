"""Image references, exactly as Docker reads them (github.com/distribution/reference).

The grammar and its regular expressions are ported from distribution's
``regexp.go`` (compiled with ``re.ASCII``: Go's ``\\w`` and character
classes are ASCII only), the normalisation from ``normalize.go``
(``ParseNormalizedNamed``: ``busybox`` -> ``docker.io/library/busybox``),
the checks and their messages from ``reference.go``. Like
``reference.TagNameOnly``, a reference with neither tag nor digest gets
the tag ``latest``.

    reference   := name [ ":" tag ] [ "@" digest ]
    name        := [domain '/'] remote-name
    domain      := host [':' port-number]
    tag         := /[\\w][\\w.-]{0,127}/
    digest      := algorithm ":" hex      (sha256: 64 lowercase hex, go-digest)
"""

from __future__ import annotations

import dataclasses
import re
from typing import Final, final

from lifecycle._errors import InvalidReferenceError

__all__ = [
    "DEFAULT_DOMAIN",
    "DEFAULT_TAG",
    "ImageReference",
    "is_identifier",
    "parse_digest",
]

# normalize.go
DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
OFFICIAL_REPO_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"
# reference.go RepositoryNameTotalLengthMax
NAME_TOTAL_LENGTH_MAX: Final = 255

# regexp.go, piece by piece.
_ALPHANUMERIC: Final = r"[a-z0-9]+"
_SEPARATOR: Final = r"(?:[._]|__|[-]+)"
_LOCALHOST: Final = "localhost"
_DOMAIN_NAME_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_OPTIONAL_PORT: Final = r"(?::[0-9]+)?"
_TAG: Final = r"[\w][\w.-]{0,127}"
_DIGEST: Final = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}"
_IDENTIFIER: Final = r"([a-f0-9]{64})"
_IPV6_ADDRESS: Final = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN_NAME: Final = _DOMAIN_NAME_COMPONENT + r"(?:\." + _DOMAIN_NAME_COMPONENT + r")*"
_HOST: Final = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6_ADDRESS + r")"
_DOMAIN_AND_PORT: Final = _HOST + _OPTIONAL_PORT
_PATH_COMPONENT: Final = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_REMOTE_NAME: Final = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_NAME: Final = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

_REFERENCE_RE: Final = re.compile(
    r"^(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST + r"))?$", re.ASCII
)
_ANCHORED_NAME_RE: Final = re.compile(
    r"^(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")$", re.ASCII
)
_ANCHORED_TAG_RE: Final = re.compile(r"^" + _TAG + r"$", re.ASCII)
_ANCHORED_IDENTIFIER_RE: Final = re.compile(r"^" + _IDENTIFIER + r"$", re.ASCII)

# go-digest: the algorithms it registers and the encoding each one requires.
_DIGEST_ENCODINGS: Final = {
    "sha256": re.compile(r"^[a-f0-9]{64}$", re.ASCII),
    "sha384": re.compile(r"^[a-f0-9]{96}$", re.ASCII),
    "sha512": re.compile(r"^[a-f0-9]{128}$", re.ASCII),
}


def is_identifier(value: str) -> bool:
    """A bare 64-hex image id (which is never a repository name)."""
    return _ANCHORED_IDENTIFIER_RE.match(value) is not None


def parse_digest(value: str, *, reference: str | None = None) -> str:
    """A digest as go-digest's ``Parse`` accepts it (``sha256:`` + 64 lowercase hex, ...)."""
    shown = value if reference is None else reference
    algorithm, colon, encoded = value.partition(":")
    if not colon or not algorithm or not encoded:
        raise InvalidReferenceError(shown, "invalid checksum digest format")
    pattern = _DIGEST_ENCODINGS.get(algorithm)
    if pattern is None:
        raise InvalidReferenceError(shown, "unsupported digest algorithm")
    if pattern.match(encoded) is None:
        if len(encoded) != {"sha256": 64, "sha384": 96, "sha512": 128}[algorithm]:
            raise InvalidReferenceError(shown, "invalid checksum digest length")
        raise InvalidReferenceError(shown, "invalid checksum digest format")
    return value


def _split_docker_domain(name: str) -> tuple[str, str]:
    """normalize.go splitDockerDomain: a first component with '.', ':', 'localhost' or an
    uppercase letter is a domain; anything else is Docker Hub's."""
    maybe_domain, slash, maybe_remote = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == _LOCALHOST:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain or maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


@final
@dataclasses.dataclass(frozen=True, slots=True, order=True)
class ImageReference:
    """A normalised image reference: ``docker.io/library/busybox:latest``.

    Make one with ``ImageReference.parse``; ``str()`` is the full form,
    ``familiar`` the short one Docker shows (``busybox:latest``).
    """

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, value: str) -> ImageReference:
        """``ParseNormalizedNamed`` then ``TagNameOnly``; ``InvalidReferenceError`` otherwise.

        The messages are distribution's: "invalid reference format",
        "repository name must be lowercase", "repository name must not be
        more than 255 characters", a bare 64-hex string refused.
        """
        if not isinstance(value, str):
            raise InvalidReferenceError(repr(value), "a reference must be a string")
        if is_identifier(value):
            raise InvalidReferenceError(
                value,
                f"invalid repository name ({value}), cannot specify 64-byte hexadecimal strings",
            )
        domain, remainder = _split_docker_domain(value)
        remote = remainder.partition(":")[0]
        if remote.lower() != remote:
            raise InvalidReferenceError(
                value, f"invalid reference format: repository name ({remote}) must be lowercase"
            )
        return cls._parse_canonical(f"{domain}/{remainder}", shown=value)

    @classmethod
    def _parse_canonical(cls, value: str, *, shown: str) -> ImageReference:
        """reference.go ``Parse`` of an already normalised name."""
        if not value:
            raise InvalidReferenceError(shown, "repository name must have at least one component")
        match = _REFERENCE_RE.match(value)
        if match is None:
            lowered = value.lower()
            if lowered != value and _REFERENCE_RE.match(lowered) is not None:
                raise InvalidReferenceError(shown, "repository name must be lowercase")
            raise InvalidReferenceError(shown, "invalid reference format")
        name, tag, digest = match.group(1), match.group(2), match.group(3)
        name_match = _ANCHORED_NAME_RE.match(name)
        if name_match is None:  # pragma: no cover -- the reference regexp matched the name
            raise InvalidReferenceError(shown, "invalid reference format")
        domain, path = name_match.group(1) or "", name_match.group(2)
        if len(path) > NAME_TOTAL_LENGTH_MAX:
            raise InvalidReferenceError(
                shown, f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
            )
        if digest is not None:
            parse_digest(digest, reference=shown)
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(domain=domain, path=path, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """``docker.io/library/busybox``: domain and path, no tag or digest."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def repository(self) -> str:
        """The familiar name without tag or digest (``busybox``, ``me/tool``), Docker's
        REPOSITORY column."""
        if self.domain != DEFAULT_DOMAIN:
            return self.name
        path = self.path
        if path.startswith(OFFICIAL_REPO_PREFIX):
            remainder = path.removeprefix(OFFICIAL_REPO_PREFIX)
            if "/" not in remainder:
                return remainder
        return path

    @property
    def familiar(self) -> str:
        """``busybox:latest``: what Docker shows (normalize.go ``FamiliarString``)."""
        return self.repository + self._suffix()

    def with_tag(self, tag: str) -> ImageReference:
        """The same repository with another tag (no digest)."""
        if _ANCHORED_TAG_RE.match(tag) is None:
            raise InvalidReferenceError(tag, "invalid tag format")
        return dataclasses.replace(self, tag=tag, digest=None)

    def _suffix(self) -> str:
        suffix = "" if self.tag is None else f":{self.tag}"
        return suffix if self.digest is None else f"{suffix}@{self.digest}"

    def __str__(self) -> str:
        return self.name + self._suffix()

    def __repr__(self) -> str:
        return f"ImageReference({str(self)!r})"
