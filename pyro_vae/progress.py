"""Progress bars for long work."""

from __future__ import annotations


class progress_bar:
    """A rich progress bar for one epoch, showing the running -ELBO; silent when disabled.

    ``with progress_bar(enabled, "epoch 1/20", n_batches) as bar: bar(step, loss)``."""

    def __init__(self, enabled: bool, description: str, total: int):
        self.enabled, self.description, self.total = enabled, description, total

    def __enter__(self):
        if not self.enabled:
            return lambda step, loss: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("-ELBO {task.fields[loss]:.2f}"),
            transient=True,
        )
        self.progress.__enter__()
        task = self.progress.add_task(self.description, total=self.total, loss=float("nan"))
        return lambda step, loss: self.progress.update(task, completed=step, loss=loss)

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.__exit__(*exc)
        return False
