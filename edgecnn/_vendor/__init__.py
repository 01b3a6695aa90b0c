"""Generated code from other projects, copied unchanged (each file's header says from where and under which licence).

Excluded from ruff and mypy: it is not ours to restyle.
"""
