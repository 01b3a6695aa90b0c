"""``edgecnn inspect``: what a model file holds, without running it.

:func:`edgecnn.inspect.contents.inspect_model` is the library function the CLI calls. Nothing is imported
here, so the package costs nothing until a command asks for it.
"""
