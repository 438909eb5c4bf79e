"""README's table of what the presets change holds every setting of every preset."""

import os

from wavegan_dist.config import PRESETS, Config

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
HEADING = "### What the presets change"


def _table():
    """(preset names of the columns, {flag name: [cell per column]}) of the README table."""
    text = open(README, encoding="utf-8").read()
    assert HEADING in text, "README has no table of what the presets change"
    section = text.split(HEADING, 1)[1]
    table = section[section.index("\n|") + 1 :].split("\n\n", 1)[0].splitlines()
    cells = [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in table]
    header, rows = cells[0], cells[2:]
    return header[1:], {row[0].removeprefix("--"): row[1:] for row in rows}


def _same(cell, value):
    if isinstance(value, bool):  # "true (with `--condition`)": the first word is the value
        return cell.split()[0] == str(value).lower()
    try:
        return float(cell.replace(",", "")) == float(value)
    except ValueError:
        return cell == str(value)


def test_every_setting_a_preset_changes_is_in_the_readme_table():
    columns, rows = _table()
    assert columns == list(PRESETS), columns  # a column per preset, in order
    changed = {name for values in PRESETS.values() for name in values}
    assert set(rows) == changed, set(rows) ^ changed
    defaults = Config().to_dict()
    for name, cells in rows.items():
        for preset, cell in zip(columns, cells):
            value = PRESETS[preset].get(name, defaults[name])
            assert _same(cell, value), (name, preset, cell, value)
