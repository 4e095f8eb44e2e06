"""Layer tests: import path for their shared references (layer_refs.py) under --import-mode=importlib."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
