import sys
from pathlib import Path

# The agent package lives next to tests/; make it importable however pytest is started.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
