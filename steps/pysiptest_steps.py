"""This project's steps: the pysiptest step library, pulled in as any user project would."""
from pysiptest.bdd.steps import *  # noqa: F401,F403
