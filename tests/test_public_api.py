"""The package's public names."""

import crazy_gary


def test_all_is_sorted_and_importable() -> None:
    """`__all__` is sorted and every name in it exists."""
    assert crazy_gary.__all__ == sorted(crazy_gary.__all__)
    for name in crazy_gary.__all__:
        assert hasattr(crazy_gary, name)


def test_spec_import_line() -> None:
    """SPEC §1's import line works."""
    from crazy_gary import EndpointStatus, HarmonyClient, HuggingFaceEndpointManager, Settings

    assert EndpointStatus.RUNNING == "running"
    assert all((HarmonyClient, HuggingFaceEndpointManager, Settings))
