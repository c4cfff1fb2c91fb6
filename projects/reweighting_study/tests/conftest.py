"""The project's package (``reweighting_study``) is imported from its folder, as its tools do."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
