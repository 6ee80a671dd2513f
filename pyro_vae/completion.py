"""The quadrant-completion experiment: a deterministic baseline against the completion CVAE.

For 1, 2 and 3 visible quadrants of real MNIST digits (the layouts of Pyro's examples/cvae:
bottom-left; the left half; all but the bottom-right), train the baseline network, then the CVAE
on top of it, and report the negative conditional log-likelihood -log p(x_h | x_v) of the hidden
pixels on the test set, in nats per image:

- baseline: the Bernoulli cross-entropy of its single guess (a point prediction: exact);
- CVAE: importance-sampled with k draws from its guide (evaluate.py), a tighter number than the
  ELBO that Pyro's tutorial reports for its CVAE.

Images are grey levels in [0, 1] and the likelihood is the Bernoulli cross-entropy, as in Pyro's
example, so the numbers compare with its table (docs/results.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pyro
import torch
import torch.nn.functional as F
from pyro.infer import Trace_ELBO

from . import data
from .config import Config
from .errors import UserError
from .evaluate import importance_log_likelihood
from .files import save_json, save_text, save_torch
from .models.completion import CompletionCVAE
from .networks import CompletionNet
from .plots import image_grid
from .progress import progress_bar
from .spec import resolve
from .training import svi_step

# Pyro's tutorial (https://pyro.ai/examples/cvae.html), nats per image: baseline, CVAE
PYRO_TUTORIAL = {1: (100.4, 71.8), 2: (61.9, 51.0), 3: (25.4, 24.2)}


def visible_mask(quadrants: int, image_shape=(1, 28, 28)) -> torch.Tensor:
    """(C, H, W) bool, True where the model is shown the image."""
    if quadrants not in (1, 2, 3):
        raise ValueError(f"quadrants must be 1, 2 or 3, not {quadrants}")
    _, h, w = image_shape
    visible = torch.zeros(image_shape, dtype=torch.bool)
    visible[:, h // 2 :, : w // 2] = True  # bottom-left
    if quadrants >= 2:
        visible[:, :, : w // 2] = True  # the whole left half
    if quadrants == 3:
        visible[:, : h // 2, :] = True  # and the top-right
    return visible


def baseline_nll(baseline: CompletionNet, x: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """-log p(x_h | x_v) of the baseline's point guess for each image: (batch,) nats."""
    logits = baseline(x.masked_fill(~visible, -1.0))
    cross_entropy = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return cross_entropy.masked_fill(visible, 0.0).flatten(1).sum(1)


def _fit(name: str, step, train: data.ImageSet, *, epochs, batch_size, generator, progress) -> None:
    """Run ``step(x, y) -> summed loss`` over shuffled batches of ``train`` for ``epochs`` epochs, with a bar."""
    n = train.num_batches(batch_size, drop_last=True)
    for epoch in range(1, epochs + 1):
        with progress_bar(progress, f"{name} epoch {epoch}/{epochs}", n) as bar:
            for i, (x, y) in enumerate(train.batches(batch_size, shuffle=True, generator=generator, drop_last=True), 1):
                loss = step(x, y)
                if i % 20 == 0:
                    bar(i, loss.item() / batch_size)


def train_baseline(
    baseline, train: data.ImageSet, visible, *, epochs, batch_size, lr, generator, progress=True
) -> None:
    optimizer = torch.optim.Adam(baseline.parameters(), lr=lr)

    def step(x, y):
        loss = baseline_nll(baseline, x, visible).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    _fit("baseline", step, train, epochs=epochs, batch_size=batch_size, generator=generator, progress=progress)


def train_cvae(
    model: CompletionCVAE, train: data.ImageSet, *, epochs, batch_size, lr, generator, progress=True
) -> None:
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    elbo, program, param_state = (
        Trace_ELBO(max_plate_nesting=1),
        (model.model, model.guide),
        {"params": {}, "constraints": {}},
    )

    def step(x, y):
        return svi_step(elbo, program, optimizer, x, y, param_state)

    _fit("CVAE", step, train, epochs=epochs, batch_size=batch_size, generator=generator, progress=progress)


def run(
    out: str | Path,
    *,
    quadrants=(1, 2, 3),
    epochs: int = 10,
    k: int = 100,
    z_dim: int = 50,
    hidden_dim: int = 500,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    device="cpu",
    train_size=None,
    test_size=None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train and measure baseline and CVAE for each number of visible quadrants; write the report to ``out``.

    ``out`` gets results.json, report.md, completion.png and a checkpoint per setting.
    Returns {quadrants: {"baseline": nats, "cvae": nats, "cvae_stderr": nats}}.
    """
    _check(quadrants, k, z_dim, hidden_dim, epochs, batch_size, lr, train_size, test_size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, test = data.load("mnist", device, binarize="none")
    train, test = train.head(train_size), test.head(test_size)
    results, rows = {}, []
    for q in quadrants:
        results[q], figure_rows = _one_setting(
            q, train, test, out, epochs, k, z_dim, hidden_dim, batch_size, lr, seed, progress, log
        )
        rows.append(figure_rows)
    figure = image_grid(
        torch.cat([r for rows_q in rows for r in rows_q]),
        out / "completion.png",
        ncol=8,
        title="quadrant completion: input, truth, baseline guess, three CVAE samples",
        row_labels=[
            f"{q}q {name}" for q in quadrants for name in ("input", "truth", "baseline", "CVAE", "CVAE", "CVAE")
        ],
    )
    save_json({"k": k, "epochs": epochs, "results": results, "pyro_tutorial": PYRO_TUTORIAL}, out / "results.json")
    save_text(_report(results, k, epochs), out / "report.md")
    log(f"wrote {out / 'report.md'} and {figure}")
    return results


def _one_setting(q, train, test, out, epochs, k, z_dim, hidden_dim, batch_size, lr, seed, progress, log):
    """Train and measure the baseline and the CVAE with ``q`` visible quadrants; save the CVAE. Returns
    (its results, its rows of the figure)."""
    pyro.set_rng_seed(seed)
    generator = torch.Generator(device=train.x.device).manual_seed(seed)
    visible = visible_mask(q, train.image_shape).to(train.x.device)
    log(f"{q} visible quadrant{'s' * (q > 1)}: training the baseline, then the CVAE ({epochs} epochs each)")
    baseline = CompletionNet(train.image_shape, hidden_dim).to(train.x.device)
    train_baseline(
        baseline,
        train,
        visible,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        generator=generator,
        progress=progress,
    )
    model = CompletionCVAE(visible, baseline.eval(), z_dim, hidden_dim).to(train.x.device)
    train_cvae(model, train, epochs=epochs, batch_size=batch_size, lr=lr, generator=generator, progress=progress)
    model.eval()
    with torch.no_grad():
        base = torch.cat([baseline_nll(baseline, x, visible) for x, _ in test.batches(1000)])
    log_p = importance_log_likelihood(model, test, k)
    result = {
        "baseline": base.mean().item(),
        "cvae": -log_p.mean().item(),
        "cvae_stderr": (log_p.std() / len(log_p) ** 0.5).item(),
    }
    log(
        f"  -log p(hidden | visible), nats per test image: baseline {result['baseline']:.2f}, CVAE {result['cvae']:.2f}"
    )
    save_torch(
        {"model": model.state_dict(), "quadrants": q, "z_dim": z_dim, "hidden_dim": hidden_dim},
        out / f"cvae-{q}.pt",
    )
    return result, _figure_rows(model, baseline, test.x[:8], visible)


def load(path: str | Path, device="cpu") -> CompletionCVAE:
    """The completion CVAE that ``run`` saved (``out/cvae-Q.pt``), with its frozen baseline, in eval mode."""
    state = torch.load(path, map_location=device, weights_only=True)
    visible = state["model"]["visible"]  # (C, H, W) bool: the layout it was trained on
    baseline = CompletionNet(tuple(visible.shape), state["hidden_dim"])
    model = CompletionCVAE(visible, baseline, state["z_dim"], state["hidden_dim"])
    model.load_state_dict(state["model"])
    return model.to(device).eval()


@torch.no_grad()
def _figure_rows(model, baseline, x, visible) -> list[torch.Tensor]:
    shown = x.masked_fill(~visible, 0.35)  # hidden pixels drawn as a flat grey
    guess = torch.where(visible, x, torch.sigmoid(baseline(x.masked_fill(~visible, -1.0))))
    samples = model.complete(x, 3)
    return [shown, x, guess, *samples]


def _check(quadrants, k, z_dim, hidden_dim, epochs, batch_size, lr, train_size, test_size) -> None:
    """A UserError of one line for a setting out of range, before any data are loaded."""
    bad = [q for q in quadrants if q not in (1, 2, 3)]
    if bad:
        raise UserError(f"quadrants {bad[0]} is not 1, 2 or 3")
    if k < 1:
        raise UserError(f"k must be at least 1, not {k}")
    # the settings a training run shares get the training run's own checks and messages
    settings = dict(z_dim=z_dim, hidden_dim=hidden_dim, epochs=epochs, batch_size=batch_size, lr=lr)
    resolve(Config(**settings, train_size=train_size, test_size=test_size))


def _report(results: dict, k: int, epochs: int) -> str:
    lines = [
        "# Quadrant completion on MNIST",
        "",
        f"-log p(hidden pixels | visible quadrants) on the test set, nats per image (lower is better); "
        f"CVAE importance-sampled with k = {k}; {epochs} epochs each. Pyro's tutorial numbers beside.",
        "",
        "| visible quadrants | baseline | CVAE | Pyro's baseline | Pyro's CVAE |",
        "|---|---|---|---|---|",
    ]
    for q, r in results.items():
        pyro_base, pyro_cvae = PYRO_TUTORIAL[q]
        lines.append(
            f"| {q} | {r['baseline']:.2f} | {r['cvae']:.2f} ± {r['cvae_stderr']:.2f} | {pyro_base} | {pyro_cvae} |"
        )
    lines += ["", "![inputs, truth, baseline and CVAE samples](completion.png)", ""]
    return "\n".join(lines)
