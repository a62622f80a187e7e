"""python -m pysiptest"""
import sys

from pysiptest.cli import main

sys.exit(main())
