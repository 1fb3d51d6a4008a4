"""Config values written as tuples, read also from the text older runs and the command line give.

This module imports nothing: the core and the data layer both read config lists with it.
"""


def config_items(value) -> list:
    """A config's list value as its items: a tuple or list, each text item split at commas.

    `--config.freeze=conv1,conv2` reaches a tuple field as ("conv1,conv2",); the config.json of
    a run older than tuple fields holds "conv1,conv2" or "" (none).
    """
    parts = [value] if isinstance(value, str) else list(value)
    items = []
    for part in parts:
        if isinstance(part, str):
            items.extend(piece.strip() for piece in part.split(",") if piece.strip())
        else:
            items.append(part)
    return items
