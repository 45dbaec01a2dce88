"""dgm: the Darwin Gödel Machine (Zhang, Hu, Lu, Lange, Clune, 2025) as a framework.

Only code in this package is trusted. Agents never see or modify it.
"""

__version__ = "0.1.0"
