"""Status reports as Python objects: a ``Record`` reads a report's fields
as attributes (``status.jobs[0].reason``), and ``to_dict()`` gives the
plain data back."""


class Record:
    """One object of a status report; nested objects are records too."""

    __slots__ = ("_data",)

    def __init__(self, data: dict):
        object.__setattr__(self, "_data", data)

    def __getattr__(self, name):
        try:
            return _wrap(self._data[name])
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("status records are read-only")

    def __getitem__(self, name):
        return _wrap(self._data[name])

    def __contains__(self, name):
        return name in self._data

    def __dir__(self):
        return list(self._data)

    def __eq__(self, other):
        return isinstance(other, Record) and other._data == self._data

    def to_dict(self) -> dict:
        """The record as plain dicts and lists."""
        return self._data

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in self._data.items() if v not in (None, [], {}))
        return f"Record({fields})"


def _wrap(value):
    if isinstance(value, dict):
        return Record(value)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value
