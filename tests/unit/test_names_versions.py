"""Package names and versions as the registry accepts them."""

import pytest

from broker.domain.names import InvalidName, parse_package_name
from broker.domain.versions import InvalidVersion, highest, is_valid_tag, parse_version


@pytest.mark.parametrize("name", ["left-pad", "@scope/pkg", "a.b_c-d", "x" * 214])
def test_valid_names(name):
    assert parse_package_name(name).name == name


@pytest.mark.parametrize("name", ["", " x", "Caps", ".hidden", "_under", "-dash", "a/b", "@/x", "@s/",
                                  "node_modules", "x" * 215, "a b", "@s/.x", "..", "a%2fb", 5, None])
def test_invalid_names(name):
    with pytest.raises(InvalidName):
        parse_package_name(name)


def test_scoped_name_parts():
    name = parse_package_name("@acme/widget")
    assert (name.scope, name.basename, name.escaped) == ("@acme", "widget", "@acme%2fwidget")
    assert name.tarball_path("1.0.0") == "@acme/widget/-/widget-1.0.0.tgz"


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.0.0", "1.0.0-", "", 1])
def test_invalid_versions(version):
    with pytest.raises(InvalidVersion):
        parse_version(version)


def test_highest_uses_semver_precedence():
    assert highest(["1.0.0", "1.10.0", "1.9.0", "1.10.0-rc.1"]) == "1.10.0"
    assert highest([]) is None


@pytest.mark.parametrize("tag,valid", [("latest", True), ("next", True), ("beta-2", True), ("1.0.0", False),
                                       ("v1", False), ("", False), ("a/b", False)])
def test_tags(tag, valid):
    assert is_valid_tag(tag) is valid
