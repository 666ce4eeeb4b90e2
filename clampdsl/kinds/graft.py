"""`graft L1 from "RUN_DIR" [run NAME] [at step N]` (graft in) and `graft L2.. from
"RUN_DIR" [run NAME] [at step N]` (graft out): part of the model is a saved run's, frozen.
The donor may also be a run a spec defines: `from spec "FILE.clamp" [experiment NAME]
[seed N]`, trained first where its run store holds no finished run of it.

Graft in (the reference's `opto_graft_in_model`): the embeddings and the layers up to L1
are the donor's weights, and the donor's own clamps on them act as its plan says (those
open at the donor's step, for the whole training), so the residual stream after L1 is the
donor's `blocks[k].out`; this model's embeddings and those layers get no update. Graft out
(`opto_graft_out_…_from_layer`): the layers from L2 on and the readout are the donor's,
without its clamps, fed by this model's earlier layers; only those earlier layers train.

The grafted weights are copied into this run's slice before its first step and held as
`freeze` holds weights (gradients flow through them, none updates them), which computes
what the reference's separate donor forward computes. Finding the donor, checking it and
bringing its clamps along is compile/donors.py's; the copy is train/session.py's.
"""

from __future__ import annotations

from clampdsl.kinds.base import Write
from clampdsl.kinds.freeze import Freeze

THROUGH, ONWARD = "through", "onward"  # graft in (layers ≤ L), graft out (layers ≥ L)
SAID = {THROUGH: "in", ONWARD: "out"}


class Graft(Freeze):
    name = statement = "graft"
    takes_donor = True
    one_per_layer = False  # `L2..` is one graft, from L2 on
    example = 'graft L1 from "runs/donor/0123abcd4567" at step 1000'

    def lower_site(self, sites, model, span, errors):
        if sites.is_heads or sites.site != "out" or (len(sites.layers) != 1 and not sites.onward):
            errors.error(
                f"graft takes one layer, not {sites.describe()}",
                span,
                hint='`graft L1 from "…"` (the embeddings and L1) or `graft L2.. from "…"` '
                "(L2 on, and the readout)",
            )
            return None
        if sites.onward and sites.layers[0] == 0:
            errors.error(
                f"graft {sites.describe()} lends the whole model: nothing of it would train",
                span,
            )
            return None
        return ONWARD if sites.onward else THROUGH

    def read_words(self, words, span, errors):
        """None of its own: the words that choose the donor's run (`run NAME`, `experiment
        NAME`) are compile/donors.py's, and taken away before."""
        if not words:
            return {}
        errors.error(
            'graft is written `graft L1 from "RUN_DIR" [run NAME] [at step N]` or `graft L1 '
            'from spec "FILE.clamp" [experiment NAME] [seed N] [at step N]`',
            words[0].span,
            hint=f"as in `{self.example}`",
        )
        return None

    def spoken(self, item, selector):
        """`graft L2.. from "RUN_DIR" run NAME at step N` (or `from spec "FILE"`): a graft
        out names its first layer onward."""
        donor, onward = item.donor, ".." * (item.site == ONWARD)
        lent = super().spoken(item, selector + onward)
        where = f'spec "{donor.file}"' if donor.in_store else f'"{donor.path}"'
        return f"{lent} from {where} run {donor.run} at step {donor.step}"

    def brings_clamps(self, item):
        return item.site == THROUGH  # graft out leaves the donor's clamps behind

    def writes(self, item, model):
        return ()

    def freezes(self, item, model):
        """What the donor lends: the embeddings and layers up to L (in), or the layers from
        L on and the readout (out)."""
        return self.lends(item, model)

    def lends(self, item, model) -> tuple[Write, ...]:
        if item.site == THROUGH:
            layers = [Write(layer, "layer") for layer in range(item.layer + 1)]
            return (Write(None, "embed"), *layers)
        layers = [Write(layer, "layer") for layer in range(item.layer, model.layers)]
        return (*layers, Write(None, "logits"))

    def covers(self, item, write: Write) -> bool:
        """Whether a site another clamp writes is one of the lent parts."""
        if write.layer is None:
            return write.site == ("embed" if item.site == THROUGH else "logits")
        return write.layer <= item.layer if item.site == THROUGH else write.layer >= item.layer

    def check(self, item, others, model, errors):
        if not item.window.is_always():
            errors.error("a graft holds for the whole training: it takes no window", item.span)
        for kind, other in others:
            if kind is self:
                self._check_pair(item, other, model, errors)
            elif other.donor != item.donor:  # not one the donor brought along
                sites = kind.writes(other, model) + kind.freezes(other, model)
                if any(self.covers(item, write) for write in sites):
                    errors.error(
                        f"{other.kind} acts on what the graft on line {item.span.line} lends "
                        "(grafted weights are the donor's, and so are their clamps)",
                        other.span,
                    )

    def _check_pair(self, item, other, model, errors):
        """One graft in and one graft out, with a layer between them left to train."""
        if other.site == item.site:
            errors.error(f"a second graft {SAID[item.site]} (line {other.span.line})", item.span)
        elif item.site == THROUGH and other.layer <= item.layer + 1:
            errors.error(
                f"with the graft on line {other.span.line}, no layer of this model trains",
                item.span,
            )


KINDS = (Graft(),)
