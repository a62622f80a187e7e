"""pysiptest: emulated SIP phones with a C core, driven from Behave and pytest."""
from __future__ import annotations
