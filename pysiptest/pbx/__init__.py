"""The reference PBX: the embedded default system under test."""
from __future__ import annotations

from pysiptest.pbx.b2bua import Bridge, ReferencePBX
from pysiptest.pbx.registrar import Binding, Registrar

__all__ = ["Binding", "Bridge", "ReferencePBX", "Registrar"]
