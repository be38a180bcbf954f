"""drover's exceptions. Bad settings are ``ValueError`` (a wrong type,
``TypeError``), with the words of the ``drover`` command line; what goes
wrong on Slurm or with workers is one of these."""


class DroverError(Exception):
    """Something drover could not do."""


class ClusterError(DroverError):
    """The pool could not start, or Slurm refused or failed a job (the
    message carries Slurm's own words, the job's state and exit code, and
    the end of its log)."""


class WorkersTimeout(DroverError, TimeoutError):
    """The workers did not register in time; the message says where their
    jobs are (PENDING with Slurm's reason, RUNNING...)."""


class TaskFailed(DroverError):
    """A command task ended without success.

    Attributes: ``task`` (its id), ``name``, ``state`` (``failed`` or
    ``cancelled``), ``exit_code`` (``None`` when it was killed or could not
    start), ``stderr`` (the end of its standard error), ``reason``."""

    def __init__(self, task, name, state, exit_code, stderr, reason):
        self.task = task
        self.name = name
        self.state = state
        self.exit_code = exit_code
        self.stderr = stderr
        self.reason = reason
        what = f"task t{task}" + (f" ({name})" if name else "")
        how = reason or (f"exit code {exit_code}" if exit_code is not None else "no exit code")
        tail = f"\n{stderr.rstrip()}" if stderr and stderr.strip() else ""
        super().__init__(f"{what} {state}: {how}{tail}")
