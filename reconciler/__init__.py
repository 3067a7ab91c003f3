"""reconcile: declarative rotation of GitLab and Zendesk credentials into every place they are used."""

from importlib.metadata import PackageNotFoundError, version

try:
    # one version, pyproject.toml's: the installed distribution's metadata says it
    __version__ = version("reconciler")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
