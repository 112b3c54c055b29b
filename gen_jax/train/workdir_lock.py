"""One training run per workdir: a lock that a run holds from start to end.

Two runs writing checkpoints and logs into one workdir would overwrite each
other's checkpoints. A run therefore holds `WorkdirLock` on ``WORKDIR/run.lock``:

* The lock is ``fcntl.flock`` on that file, so the kernel releases it however the
  holder ends, SIGKILL and out-of-memory kills included. The file also records
  the holder's pid, host and start time, for the messages.
* A second run on the workdir raises `WorkdirInUseError`, naming the holder.
* A run that finds the file unlocked but still naming a holder knows that the
  holder died without releasing it (killed, crashed, preempted): it warns and
  takes over. A run that ends normally deletes the file.

Multi-process runs: all processes of a run share its workdir, so only process 0
takes the lock (pass ``process_index``). Whether a lock is seen from other hosts
depends on the filesystem: local disks, and NFS (where Linux implements flock
with POSIX locks), keep two hosts apart; FUSE mounts such as gcsfuse, or Lustre
mounted with ``localflock``, only keep apart runs on one host. Object stores
(``gs://`` workdirs) and filesystems without locks get a warning and no lock.
"""

import datetime
import errno
import fcntl
import json
import os
import socket

from absl import logging

LOCK_FILE = "run.lock"


class WorkdirInUseError(RuntimeError):
  """Another live run holds the workdir's lock."""


class WorkdirLock:
  """Holds ``WORKDIR/run.lock`` while the ``with`` block runs (see the module docstring).

  Args:
    workdir: the run's directory; created if missing.
    process_index: this process's index in a multi-process run; only 0 locks.

  Raises:
    WorkdirInUseError: on entry, when another run holds the lock.
    NotADirectoryError: on entry, when the workdir is a file.
  """

  def __init__(self, workdir: os.PathLike | str, process_index: int = 0):
    self.workdir = str(workdir)
    self.path = os.path.join(self.workdir, LOCK_FILE)
    self.process_index = process_index
    self._fd: int | None = None

  def __enter__(self) -> "WorkdirLock":
    if self.process_index != 0:
      return self
    if "://" in self.workdir:
      logging.warning("%s is not a local path and cannot be locked: make sure no other run "
                      "uses it", self.workdir)
      return self
    if os.path.exists(self.workdir) and not os.path.isdir(self.workdir):
      raise NotADirectoryError(f"workdir {self.workdir} is a file, not a directory: give the "
                               f"directory of the run (it is created if missing)")
    os.makedirs(self.workdir, exist_ok=True)
    self._fd = self._lock()
    if self._fd is not None:
      self._take_over()
    return self

  def __exit__(self, *exc_info) -> None:
    if self._fd is None:
      return
    # Delete while still locked, so that the file exists exactly while a run is in
    # progress or after one died.
    try:
      os.unlink(self.path)
    except FileNotFoundError:
      pass
    os.close(self._fd)
    self._fd = None

  def _lock(self) -> int | None:
    """Opens and locks the lock file; its descriptor, or None if locks are unsupported."""
    while True:
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        holder = _describe(_read(fd))
        os.close(fd)
        raise WorkdirInUseError(
            f"workdir {self.workdir} is in use by another training run ({holder}; lock file "
            f"{self.path}). Wait for that run to end or stop it, or train in another "
            f"--workdir. If no such run is alive (a network filesystem may keep the lock of "
            f"a lost host for a while), delete {self.path}.") from None
      except OSError as e:
        os.close(fd)
        if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
          raise
        logging.warning("the filesystem of %s does not support file locks (%s): make sure no "
                        "other run uses it", self.workdir, e)
        return None
      # A holder that ended between our open and our lock deleted the file we
      # locked; then lock the file at the path now.
      try:
        if os.path.samestat(os.fstat(fd), os.stat(self.path)):
          return fd
      except FileNotFoundError:
        pass
      os.close(fd)

  def _take_over(self) -> None:
    """Warns if a dead run left its record behind, then records this run."""
    previous = _read(self._fd)
    if previous is not None:
      logging.warning("taking over %s from a run that ended without releasing it (%s): it was "
                      "killed, crashed or preempted", self.path, _describe(previous))
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}
    os.ftruncate(self._fd, 0)
    os.pwrite(self._fd, json.dumps(record).encode(), 0)


def _read(fd: int) -> dict | None:
  """The holder record in the lock file; None if it is empty, {} if unreadable."""
  text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
  if not text:
    return None
  try:
    record = json.loads(text)
  except json.JSONDecodeError:
    return {}
  return record if isinstance(record, dict) else {}


def _describe(record: dict | None) -> str:
  """'pid 12 on host h, started T' from a holder record."""
  if not record:
    return "its pid and host are not recorded"
  return (f"pid {record.get('pid', '?')} on host {record.get('host', '?')}, started "
          f"{record.get('started', '?')}")
