"""Behave environment of this project: the pysiptest hooks (reference PBX unless -D target/sut says otherwise)."""
from pysiptest.bdd.environment import *  # noqa: F401,F403
