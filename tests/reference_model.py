"""A deliberately plain, per-head, per-position forward of one run: the yardstick the
batched model is checked against."""

import math

import torch

SETTINGS = (
    "clampdsl 1\nmodel layers=2 heads=2 d_model=8\n"
    "task classes=6 new_classes=4 features=synthetic(dim=6, correlation=0.3)\n"
)


def tiny_group(*experiments: str, seeds=None, settings: str = ""):
    """(model, clamps, batch of 7 sequences) for experiments batched on a tiny model;
    `settings`, lines added to the tiny model's (`task context=3`)."""
    from conftest import clamp_state

    from clampdsl.compile import compile_source
    from clampdsl.model.transformer import BatchedTransformer
    from clampdsl.tasks.fewshot import FewShotTask

    body = "".join(f"experiment e{i}:\n{text}" for i, text in enumerate(experiments))
    runs = compile_source(SETTINGS + settings + body).runs
    task = FewShotTask(runs[0].task)
    model = BatchedTransformer(
        runs[0].model,
        task.table.shape[-1],
        runs[0].task.labels,
        seeds or [5 + i for i in range(len(runs))],
    )
    batch = task.sample(7, torch.Generator().manual_seed(0))
    return model, clamp_state(runs), batch


def layer_norm(x, g, b):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * g + b


def rope(x, position):
    out = torch.empty_like(x)
    d = x.shape[-1]
    for i in range(0, d, 2):
        angle = position * 10000.0 ** (-i / d)
        c, s = math.cos(angle), math.sin(angle)
        out[i] = x[i] * c - x[i + 1] * s
        out[i + 1] = x[i] * s + x[i + 1] * c
    return out


def reference_logits(
    weights, r, features, labels, layers, heads, zero=None, edit=None, record=None, model=None
):
    """Query logits [B, L] of run r, one sequence and one head at a time.

    `zero` = (layer or None, site, head or None) zeroes one site, as a zero clamp would.
    `edit(site, layer, head, i, value, b)` is a clamp written by hand: it returns what the
    site becomes, for "scores" and "pattern" (row i of a head, keys 0..i), "positions" (a
    head's relative-position biases by distance, [P]), "out" (the residual after a layer,
    [N, C]) and "logits" ([L]) of sequence b. `record`, a dict, receives each row's scores
    before any edit, at (layer, head, b, i), its pattern at ("pattern", layer, head, b, i),
    the embedding at ("embed", b), and the residual after each layer and the logits, at
    ("out", layer, b) and ("logits", b). `model`, a ModelConfig: its variant (positions,
    MLP blocks, smeared keys); None: RoPE, attention only."""
    edit = edit or (lambda site, layer, head, i, value, b: value)
    zero_layer, zero_site, zero_head = zero or (None, None, None)

    def zeroed(layer, site, head=None):
        return (zero_layer, zero_site) == (layer, site) and zero_head in (None, head)

    w = {k: v[r] for k, v in weights.items()}
    out = []
    for b in range(features.shape[0]):
        tokens = []
        for k in range(features.shape[1]):
            tokens.append(features[b, k] @ w["embed_w"] + w["embed_b"])
            if k < features.shape[1] - 1:
                tokens.append(w["label_embed"][labels[b, k]])
        x = plain_layers(w, torch.stack(tokens), b, layers, heads, model, zeroed, edit, record)
        query = layer_norm(x[-1], w["final_ln_g"], w["final_ln_b"])
        logits = query @ w["unembed_w"] + w["unembed_b"]
        if record is not None:
            record[("logits", b)] = logits
        logits = edit("logits", None, None, None, logits, b)
        out.append(0 * logits if zeroed(None, "logits") else logits)
    return torch.stack(out)


def reference_token_logits(weights, r, tokens, model, edit=None):
    """Logits [T, V] of run r on one sequence of tokens [T] (the token model)."""
    w = {k: v[r] for k, v in weights.items()}
    edit = edit or (lambda site, layer, head, i, value, b: value)
    never = lambda *site: False  # noqa: E731 - zeroes nothing
    x = plain_layers(w, w["token_embed"][tokens], 0, model.layers, model.heads, model, never, edit)
    return layer_norm(x, w["final_ln_g"], w["final_ln_b"]) @ w["unembed_w"] + w["unembed_b"]


def plain_layers(w, x, b, layers, heads, model, zeroed, edit, record=None):
    """The residual [N, C] of sequence b after the embedding's positions and every layer
    (`reference_logits` says what zeroed, edit and record do)."""
    pos, mlp, smear = (model.pos, model.mlp, model.smear) if model else ("rope", 0, "off")
    n, c = x.shape
    hd = c // heads
    if pos == "absolute":
        x = x + w["pos_embed"][:n]
    if zeroed(None, "embed"):
        x = torch.zeros_like(x)
    if record is not None:
        record[("embed", b)] = x
    turn = rope if pos == "rope" else (lambda vector, position: vector)
    for layer in range(layers):
        if zeroed(layer, "in"):
            x = torch.zeros_like(x)
        h = layer_norm(x, w[f"ln_g{layer}"], w[f"ln_b{layer}"])
        qkv = h @ w[f"qkv{layer}"]
        z = torch.zeros(n, c)
        for head in range(heads):
            part = {
                site: qkv[:, offset + head * hd : offset + (head + 1) * hd]
                for site, offset in (("q", 0), ("k", c), ("v", 2 * c))
            }
            q, k_, v = (0 * part[s] if zeroed(layer, s, head) else part[s] for s in "qkv")
            if zeroed(layer, "pattern", head) or zeroed(layer, "z", head):
                continue  # this head writes nothing
            keys = [turn(k_[j], j) for j in range(n)]
            if smear == "on":  # each key, after RoPE, mixed with its predecessor's
                keep = torch.sigmoid(w[f"smear{layer}"][head])
                keys = keys[:1] + [keep * keys[j] + (1 - keep) * keys[j - 1] for j in range(1, n)]
            bias = torch.zeros(n)
            if pos == "relative":
                bias = edit("positions", layer, head, None, w[f"rel{layer}"][head], b)
            for i in range(n):
                scores = torch.stack(
                    [turn(q[i], i) @ keys[j] / math.sqrt(hd) + bias[i - j] for j in range(i + 1)]
                )
                if record is not None:
                    record[(layer, head, b, i)] = scores
                scores = edit("scores", layer, head, i, scores, b)
                pattern = torch.softmax(scores, 0)
                if record is not None:
                    record[("pattern", layer, head, b, i)] = pattern
                pattern = edit("pattern", layer, head, i, pattern, b)
                z[i, head * hd : (head + 1) * hd] = pattern @ v[: i + 1]
        x = x + z @ w[f"proj{layer}"]
        if mlp:
            normed = layer_norm(x, w[f"mlp_ln_g{layer}"], w[f"mlp_ln_b{layer}"])
            hidden = torch.nn.functional.gelu(normed @ w[f"mlp_in{layer}"] + w[f"mlp_in_b{layer}"])
            x = x + hidden @ w[f"mlp_out{layer}"] + w[f"mlp_out_b{layer}"]
        if record is not None:
            record[("out", layer, b)] = x
        x = edit("out", layer, None, None, x, b)
        if zeroed(layer, "out"):
            x = torch.zeros_like(x)
    return x


def check_against_reference(experiment: str, edit_of, settings: str = ""):
    """The batched model with `experiment`'s clamps against the reference forward with the
    clamp written by hand (`edit_of(model, batch)` → an `edit`): logits and every
    gradient. The experiment is batched between two others, whose slices it must not
    touch. Returns the batched run's gradients, zeros for weights it does not use."""
    import torch.nn.functional as F

    model, clamps, batch = tiny_group(
        "    ablate L1.H1\n", experiment, "    clamp L2.H0.q to zero\n", settings=settings
    )
    c = model.config
    logits = model(batch.features, batch.labels, clamps)
    losses = model.loss(batch.features, batch.labels, clamps)
    batched = _gradients(model, losses[1])
    edit = edit_of(model, batch)
    expected = reference_logits(
        model.weights, 1, batch.features, batch.labels, c.layers, c.heads, edit=edit, model=c
    )
    torch.testing.assert_close(logits[1], expected, atol=1e-5, rtol=1e-5)
    reference = _gradients(model, F.cross_entropy(expected, batch.labels[:, -1]), all_runs=True)
    for name, grad in reference.items():
        assert grad[0].abs().max() == 0 and grad[2].abs().max() == 0, name  # its slice only
        torch.testing.assert_close(batched[name], grad[1], atol=1e-5, rtol=1e-4, msg=name)
    return batched


def _gradients(model, loss, all_runs=False):
    """Each weight's gradient (zeros where the loss does not use it): run 1's, or every run's."""
    model.zero_grad()
    loss.backward()
    grads = {
        name: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for name, p in model.weights.items()
    }
    return grads if all_runs else {name: g[1] for name, g in grads.items()}
