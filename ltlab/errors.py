"""Exceptions that the CLI turns into a one-paragraph message and exit code 2."""


class LtlabError(Exception):
    """Bad input: the message names the problem and the fix."""


class ConfigError(LtlabError, ValueError):
    """A config key or value is not valid."""


class DataError(LtlabError, FileNotFoundError):
    """A data set or weight file is missing or malformed."""
