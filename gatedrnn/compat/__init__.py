"""Compatibility layers for code ported from other frameworks."""

from . import tf
