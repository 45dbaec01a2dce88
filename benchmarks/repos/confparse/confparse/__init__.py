"""confparse: a forgiving INI reader/writer and a small CSV dialect sniffer."""

from confparse.csvlite import read_rows, sniff_delimiter
from confparse.ini import Config, ParseError, dumps, load, loads

__all__ = ["Config", "ParseError", "dumps", "load", "loads", "read_rows", "sniff_delimiter"]
