"""Domain exceptions, raised in the core and translated to CLI or HTTP errors at the edge."""


class PilahError(Exception):
    """Base class of every error Pilah reports to a user."""


class DataError(PilahError):
    """An input dataset or file cannot be read as Pilah data."""


class ModelArtifactError(PilahError):
    """A model artifact is missing, corrupted or incompatible with this code."""
