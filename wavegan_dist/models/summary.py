"""Layer tables of the networks: each layer's output shape and parameter count."""

from __future__ import annotations


def layer_table(model, input_shape: tuple) -> tuple[list[tuple], int]:
    """Lists a built model's layers in call order.

    Args:
      model: a network with a `summary_layers` property of (layer, note) pairs, each
        layer reading the previous one's output, or (layer, note, name) triples for a
        branch reading the output of the earlier layer called `name`.
      input_shape: one example's input shape, without the batch dimension.
    Returns:
      (rows, total): rows of (name, type, output shape without batch, parameters, note),
      and the model's total parameter count.
    """
    shape = (None, *input_shape)
    shapes: dict[str, tuple] = {}
    rows = []
    for layer, note, *source in model.summary_layers:
        shape = tuple(layer.compute_output_shape(shapes[source[0]] if source else shape))
        shapes[layer.name] = shape
        # The polyphase layers name the Keras layer whose mathematics they compute.
        kind = getattr(layer, "layer_kind", type(layer).__name__)
        rows.append((layer.name, kind, shape[1:], layer.count_params(), note))
    return rows, model.count_params()


def format_table(title: str, rows: list[tuple], total: int) -> str:
    """Renders layer_table's rows as aligned text with a totals line."""
    header = ("layer", "type", "output shape", "parameters", "then")
    cells = [header] + [(n, t, str(tuple(s)), f"{p:,}", note) for n, t, s, p, note in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    align = lambda r: "  ".join(
        c.rjust(w) if i == 3 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))
    ).rstrip()
    rule = "-" * len(align(header))
    body = [title, rule, align(header), rule] + [align(r) for r in cells[1:]]
    return "\n".join(body + [rule, f"total parameters: {total:,}"])
