"""The writer's low-level HDF5 helpers write what h5py's high-level calls would."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from precdiff.store.h5io import new_attribute, set_attribute


@pytest.mark.parametrize("value", ["precdiff-capture", "", "ünïcode", 2, -7, False, True])
def test_new_attribute_has_the_type_and_value_of_h5pys(tmp_path: Path, value: str | int | bool) -> None:
    with h5py.File(tmp_path / "ours.h5", "w") as ours, h5py.File(tmp_path / "h5py.h5", "w") as theirs:
        new_attribute(ours.id, "a", value)
        theirs.attrs["a"] = value
    with h5py.File(tmp_path / "ours.h5") as ours, h5py.File(tmp_path / "h5py.h5") as theirs:
        ours_id, theirs_id = ours.attrs.get_id("a"), theirs.attrs.get_id("a")
        assert ours_id.get_type() == theirs_id.get_type()
        assert ours_id.shape == theirs_id.shape == ()
        assert ours.attrs["a"] == theirs.attrs["a"] == value
        assert type(ours.attrs["a"]) is type(theirs.attrs["a"])


def test_set_attribute_overwrites_in_place_keeping_the_type(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "x.h5", "w") as handle:
        new_attribute(handle.id, "complete", False)
        before = handle.attrs.get_id("complete").get_type()
        set_attribute(handle.id, "complete", True)
    with h5py.File(tmp_path / "x.h5") as handle:
        assert handle.attrs["complete"] is np.True_
        assert handle.attrs.get_id("complete").get_type() == before
        assert list(handle.attrs) == ["complete"]
