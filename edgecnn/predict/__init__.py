"""``edgecnn predict``: run a model on image files, whatever its task.

:func:`edgecnn.predict.files.predict` is the library function the CLI calls. Nothing is imported here, so
the package costs nothing until a command asks for it.
"""
