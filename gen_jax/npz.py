"""Reading ``.npz`` files (datasets, samples, weights) with errors that name the file and array.

numpy's own errors name neither: random bytes are taken for a pickle and an object
array for untrusted code, and both suggest ``allow_pickle=True``, which gen_jax never
uses (arrays of numbers need no pickle, and a pickle can run code).
"""

import os
import zipfile

import numpy as np


def load(path: str | os.PathLike, what: str = "file") -> dict[str, np.ndarray]:
  """Every array of the ``.npz`` archive at ``path``.

  Args:
    path: the file.
    what: what the file is, for messages (e.g. ``'samples file'``).

  Raises:
    FileNotFoundError: there is no such file.
    ValueError: it is not an ``.npz`` archive, or an array of it holds Python
      objects; the message names the file (and the array).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{what} {path}: no such file")
  expected = "an .npz archive of named numpy arrays (as written by numpy.savez)"
  if not zipfile.is_zipfile(path):
    # numpy would take it for a pickle and suggest allow_pickle=True.
    raise ValueError(f"{what} {path} is not {expected}: it is not a zip archive (a truncated "
                     f"copy, or another format)")
  try:
    archive = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
    raise ValueError(f"{what} {path} is not {expected}: {e}") from e
  arrays = {}
  with archive:
    for key in archive.files:
      try:
        arrays[key] = archive[key]
      except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"array {key!r} of {what} {path} cannot be read: {e}. Only arrays of "
                         f"numbers are read (never pickled Python objects): store images as "
                         f"uint8 and labels as integers") from e
  return arrays
