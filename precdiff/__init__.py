from precdiff._version import __version__
