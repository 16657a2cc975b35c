"""The publish document is checked completely before anything is stored."""

import io
import tarfile

import pytest

from broker.domain.packument import wants_abbreviated
from broker.domain.publish import InvalidDocument, parse_publish_document
from tests.support.packages import publish_document


def test_a_valid_document_parses():
    request = parse_publish_document(publish_document("pkg", "1.2.3", tag="next"), "pkg", 10**6)
    assert (request.version, request.tag) == ("1.2.3", "next")
    assert request.manifest["dist"]["integrity"] == request.digests.integrity
    assert "tarball" not in request.manifest["dist"]


def test_oversized_tarball_is_refused():
    with pytest.raises(InvalidDocument, match="at most 10"):
        parse_publish_document(publish_document("pkg", "1.0.0"), "pkg", 10)


def test_restricted_unscoped_package_is_refused():
    with pytest.raises(InvalidDocument, match="unscoped"):
        parse_publish_document(publish_document("pkg", "1.0.0", access="restricted"), "pkg", 10**6)


def test_tarball_without_package_json_is_refused():
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("other/file.txt")
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(InvalidDocument, match="no package/package.json"):
        parse_publish_document(publish_document("pkg", "1.0.0", data=buffer.getvalue()), "pkg", 10**6)


@pytest.mark.parametrize("accept,abbreviated", [
    ("application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*", True),
    ("application/json", False), (None, False),
    ("application/json, application/vnd.npm.install-v1+json; q=0.5", False),
])
def test_accept_header(accept, abbreviated):
    assert wants_abbreviated(accept) is abbreviated
