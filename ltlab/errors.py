"""Exceptions that the CLI turns into a one-paragraph message and exit code 2, and how messages count."""


class LtlabError(Exception):
    """Bad input: the message names the problem and the fix."""


class ConfigError(LtlabError, ValueError):
    """A config key or value is not valid."""


class DataError(LtlabError, FileNotFoundError):
    """A data set or weight file is missing or malformed."""


def counted(n: int, noun: str) -> str:
    """'1 method', '3 methods': a count and its noun, for messages and report sentences.

    >>> counted(1, "run"), counted(2, "run")
    ('1 run', '2 runs')
    """
    return f"{n} {noun}{'' if n == 1 else 's'}"
