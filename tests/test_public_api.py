"""The package's public names."""

import importlib

import pytest

import crazy_gary


def test_all_is_sorted_and_importable() -> None:
    """`__all__` is sorted and every name in it exists."""
    assert crazy_gary.__all__ == sorted(crazy_gary.__all__)
    for name in crazy_gary.__all__:
        assert hasattr(crazy_gary, name)


def test_main_names_import_from_the_package() -> None:
    """The main public names import from the package itself."""
    from crazy_gary import EndpointStatus, HarmonyClient, HuggingFaceEndpointManager, Settings

    assert EndpointStatus.RUNNING == "running"
    assert all((HarmonyClient, HuggingFaceEndpointManager, Settings))


@pytest.mark.parametrize("name", crazy_gary.__all__)
def test_each_public_name_is_its_home_modules_own(name: str) -> None:
    """A public name, loaded on first use, is the very object its module defines."""
    home = importlib.import_module(crazy_gary._HOMES[name])
    assert getattr(crazy_gary, name) is getattr(home, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    """Asking the package for a name it does not have raises AttributeError, as for any module."""
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = crazy_gary.no_such_name
