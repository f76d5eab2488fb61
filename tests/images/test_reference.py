"""ImageReference follows distribution/reference: a conformance table ported from its
reference_test.go and normalize_test.go (github.com/distribution/reference)."""

from __future__ import annotations

import pytest

from lifecycle import ImageReference, InvalidArgumentError, InvalidReferenceError

HEX = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
DIGEST = f"sha256:{HEX}"

# (input, full string, familiar string, domain, path, tag, digest)
VALID = [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest", "docker.io",
     "library/busybox", "latest", None),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36", "docker.io",
     "library/busybox", "1.36", None),
    ("docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest", "docker.io",
     "docker/docker", "latest", None),
    ("library/debian", "docker.io/library/debian:latest", "debian:latest", "docker.io",
     "library/debian", "latest", None),
    ("docker.io/debian", "docker.io/library/debian:latest", "debian:latest", "docker.io",
     "library/debian", "latest", None),
    ("index.docker.io/docker/docker", "docker.io/docker/docker:latest", "docker/docker:latest",
     "docker.io", "docker/docker", "latest", None),
    ("index.docker.io/debian", "docker.io/library/debian:latest", "debian:latest", "docker.io",
     "library/debian", "latest", None),
    ("127.0.0.1:5000/docker/docker", "127.0.0.1:5000/docker/docker:latest",
     "127.0.0.1:5000/docker/docker:latest", "127.0.0.1:5000", "docker/docker", "latest", None),
    ("127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest", "127.0.0.1:5000/debian:latest",
     "127.0.0.1:5000", "debian", "latest", None),
    ("192.168.0.1", "docker.io/library/192.168.0.1:latest", "192.168.0.1:latest", "docker.io",
     "library/192.168.0.1", "latest", None),
    ("192.168.0.1:80", "docker.io/library/192.168.0.1:80", "192.168.0.1:80", "docker.io",
     "library/192.168.0.1", "80", None),
    ("192.168.0.1:8/debian", "192.168.0.1:8/debian:latest", "192.168.0.1:8/debian:latest",
     "192.168.0.1:8", "debian", "latest", None),
    ("[fc00::1]:5000/docker", "[fc00::1]:5000/docker:latest", "[fc00::1]:5000/docker:latest",
     "[fc00::1]:5000", "docker", "latest", None),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
     "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest", "[fc00:1:2:3:4:5:6:7]:5000",
     "library/debian", "latest", None),
    (f"docker.io/{HEX}", f"docker.io/library/{HEX}:latest", f"{HEX}:latest", "docker.io",
     f"library/{HEX}", "latest", None),
    ("Docker/docker", "Docker/docker:latest", "Docker/docker:latest", "Docker", "docker",
     "latest", None),
    ("DOCKER/docker", "DOCKER/docker:latest", "DOCKER/docker:latest", "DOCKER", "docker",
     "latest", None),
    ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
     "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest",
     "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev:latest", "docker.io",
     "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "latest", None),
    ("docker-rules/docker", "docker.io/docker-rules/docker:latest", "docker-rules/docker:latest",
     "docker.io", "docker-rules/docker", "latest", None),
    ("docker---rules/docker", "docker.io/docker---rules/docker:latest",
     "docker---rules/docker:latest", "docker.io", "docker---rules/docker", "latest", None),
    ("d/docker", "docker.io/d/docker:latest", "d/docker:latest", "docker.io", "d/docker",
     "latest", None),
    ("jess/t", "docker.io/jess/t:latest", "jess/t:latest", "docker.io", "jess/t", "latest", None),
    ("dock__er/docker", "docker.io/dock__er/docker:latest", "dock__er/docker:latest",
     "docker.io", "dock__er/docker", "latest", None),
    ("test_com/foo", "docker.io/test_com/foo:latest", "test_com/foo:latest", "docker.io",
     "test_com/foo", "latest", None),
    ("test.com:8080/foo", "test.com:8080/foo:latest", "test.com:8080/foo:latest",
     "test.com:8080", "foo", "latest", None),
    ("test-com:8080/foo", "test-com:8080/foo:latest", "test-com:8080/foo:latest",
     "test-com:8080", "foo", "latest", None),
    ("xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo:latest", "xn--n3h.com:18080/foo:latest",
     "xn--n3h.com:18080", "foo", "latest", None),
    ("localhost/foo", "localhost/foo:latest", "localhost/foo:latest", "localhost", "foo",
     "latest", None),
    ("localhost:5000/foo/bar:v1", "localhost:5000/foo/bar:v1", "localhost:5000/foo/bar:v1",
     "localhost:5000", "foo/bar", "v1", None),
    ("docker.io/library/foo/bar", "docker.io/library/foo/bar:latest", "library/foo/bar:latest",
     "docker.io", "library/foo/bar", "latest", None),
    ("store/foo/bar", "docker.io/store/foo/bar:latest", "store/foo/bar:latest", "docker.io",
     "store/foo/bar", "latest", None),
    ("example.com/private/moonbase", "example.com/private/moonbase:latest",
     "example.com/private/moonbase:latest", "example.com", "private/moonbase", "latest", None),
    ("ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base:latest",
     "ubuntu-12.04-base:latest", "docker.io", "library/ubuntu-12.04-base", "latest", None),
    ("lowercase:Uppercase", "docker.io/library/lowercase:Uppercase", "lowercase:Uppercase",
     "docker.io", "library/lowercase", "Uppercase", None),
    (f"redis@{DIGEST}", f"docker.io/library/redis@{DIGEST}", f"redis@{DIGEST}", "docker.io",
     "library/redis", None, DIGEST),
    (f"busybox:latest@{DIGEST}", f"docker.io/library/busybox:latest@{DIGEST}",
     f"busybox:latest@{DIGEST}", "docker.io", "library/busybox", "latest", DIGEST),
    (f"dmcgowan/myapp@{DIGEST}", f"docker.io/dmcgowan/myapp@{DIGEST}", f"dmcgowan/myapp@{DIGEST}",
     "docker.io", "dmcgowan/myapp", None, DIGEST),
    ("dbcc1", "docker.io/library/dbcc1:latest", "dbcc1:latest", "docker.io", "library/dbcc1",
     "latest", None),
    (HEX[:-1], f"docker.io/library/{HEX[:-1]}:latest", f"{HEX[:-1]}:latest", "docker.io",
     f"library/{HEX[:-1]}", "latest", None),
    ("a" * 127 + ":" + "t" * 128, f"docker.io/library/{'a' * 127}:{'t' * 128}",
     f"{'a' * 127}:{'t' * 128}", "docker.io", f"library/{'a' * 127}", "t" * 128, None),
]  # fmt: skip

# (input, a fragment of the message)
INVALID = [
    ("", "invalid reference format"),
    (":justtag", "invalid reference format"),
    (f"@{DIGEST}", "invalid reference format"),
    ("https://github.com/docker/docker", "invalid reference format"),
    ("docker/Docker", "must be lowercase"),
    ("Uppercase:tag", "must be lowercase"),
    ("test:5000/Uppercase/lowercase:tag", "must be lowercase"),
    ("-docker", "invalid reference format"),
    ("-docker/docker", "invalid reference format"),
    ("-docker.io/docker/docker", "invalid reference format"),
    ("docker///docker", "invalid reference format"),
    ("docker.io/docker/Docker", "must be lowercase"),
    ("[fc00::1]", "invalid reference format"),
    ("[fc00::1]:5000", "invalid reference format"),
    ("fc00::1:5000/debian", "invalid reference format"),
    ("[fe80::1%eth0]:5000/debian", "invalid reference format"),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid reference format"),
    (HEX, "cannot specify 64-byte hexadecimal strings"),
    ("docker-/docker", "invalid reference format"),
    ("-docker-/docker", "invalid reference format"),
    ("____/____", "invalid reference format"),
    ("_docker/_docker", "invalid reference format"),
    ("dock..er/docker", "invalid reference format"),
    ("dock_.er/docker", "invalid reference format"),
    ("dock-.er/docker", "invalid reference format"),
    ("docker/", "invalid reference format"),
    ("aa/asdf$$^/aa", "invalid reference format"),
    ("a" * 256, "must not be more than 255 characters"),
    ("a/" * 128 + "a:tag", "must not be more than 255 characters"),
    ("busybox:" + "t" * 129, "invalid reference format"),
    ("busybox:-tag", "invalid reference format"),
    ("validname@invaliddigest:" + "e" * 64, "unsupported digest algorithm"),
    ("validname@sha256:" + "e" * 63, "invalid checksum digest length"),
    ("validname@sha256:" + "E" * 64, "invalid checksum digest format"),
]


@pytest.mark.parametrize(
    ("given", "full", "familiar", "domain", "path", "tag", "digest"),
    VALID,
    ids=lambda v: str(v)[:40],
)
def test_valid_references_normalise_as_distribution_does(
    given: str,
    full: str,
    familiar: str,
    domain: str,
    path: str,
    tag: str | None,
    digest: str | None,
) -> None:
    """Each valid reference gives distribution's full and familiar forms and its parts."""
    reference = ImageReference.parse(given)
    assert (full, familiar, domain, path, tag, digest) == (
        str(reference),
        reference.familiar,
        reference.domain,
        reference.path,
        reference.tag,
        reference.digest,
    )
    # The full form parses back to the same reference.
    assert reference == ImageReference.parse(full)


@pytest.mark.parametrize(("given", "message"), INVALID, ids=lambda v: str(v)[:40])
def test_invalid_references_are_refused_with_distributions_message(
    given: str, message: str
) -> None:
    """Each invalid reference raises InvalidReferenceError (an InvalidArgumentError) with the
    reason distribution gives, naming what was given."""
    with pytest.raises(InvalidReferenceError, match="reference") as raised:
        ImageReference.parse(given)
    assert message in str(raised.value)
    assert isinstance(raised.value, InvalidArgumentError)
    assert given == raised.value.reference


def test_the_issue_example() -> None:
    """busybox: docker.io, library/busybox, latest, no digest."""
    ref = ImageReference.parse("busybox")
    assert ("docker.io", "library/busybox", "latest", None) == (
        ref.domain,
        ref.path,
        ref.tag,
        ref.digest,
    )
    assert "docker.io/library/busybox:latest" == str(ref)
    assert "busybox:latest" == ref.familiar
    assert "busybox" == ref.repository


def test_a_non_string_is_refused() -> None:
    """Not a string: refused with the type named."""
    with pytest.raises(InvalidReferenceError, match="must be a string"):
        ImageReference.parse(42)  # type: ignore[arg-type]
