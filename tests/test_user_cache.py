"""The user's cache directory (clampdsl/user_cache.py): private, or not used at all."""

import os

from clampdsl import user_cache


def test_the_cache_directory_is_the_users_own(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    directory = user_cache.directory()
    assert directory == tmp_path / "xdg" / "clampdsl"
    assert directory.stat().st_mode & 0o777 == 0o700
    os.chmod(directory, 0o777)  # another user could plant a file: nothing is cached
    assert user_cache.directory() is None
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid: the default instead
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache.directory() == tmp_path / "home" / ".cache" / "clampdsl"
