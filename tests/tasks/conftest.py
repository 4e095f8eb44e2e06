"""Task tests: import path for their shared CLI helpers (clikit.py) under --import-mode=importlib."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # clikit.py under --import-mode=importlib
