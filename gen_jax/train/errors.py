"""Errors that end a run with a message that says it all.

Plain Python, no JAX: the command line imports them at start-up, before the
seconds-long imports of the trainer.
"""


class CheckpointSaveError(OSError):
  """A save failed to write its files (a full disk, an I/O error)."""


class DamagedCheckpointError(RuntimeError):
  """A checkpoint's files differ from those its save wrote."""


class ConfigChangedError(ValueError):
  """Sound checkpoints whose train state does not fit the run's config."""
