"""What every module of the stack shares, whatever the service: the batch form of its input, one-line errors,
the refusal of new_only and a file's checksum."""
import hashlib


def batch_items(params, option, fields):
    """The items of the list option `option`, or, when it is not given, the single form's `fields` as its one item.

    The first field names an item; a name given twice is a ValueError, raised before anything changes.
    """
    items = params[option]
    if items is None:
        items = [{field: params[field] for field in fields}]
    names = [item[fields[0]] for item in items]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{option}: {', '.join(twice)} given more than once")
    return items


def one_line(error, limit=500):
    """An error (an exception or a text) as one line a person can read: whitespace collapsed, at most `limit`
    characters; an exception without a message by its type's name."""
    text = " ".join(str(error).split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    return text[:limit]


def already_taken(service, taken):
    """What a module fails with when new_only finds what already holds the new names, from {name: a phrase saying
    what holds it}: the one line (msg) and the names (taken)."""
    return {"msg": f"{service}: already taken, nothing was changed - {'; '.join(taken.values())}", "taken": sorted(taken)}


def file_sha256(path):
    """The SHA-256 of a file's content, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
