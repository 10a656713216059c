from tix.settings import ServiceSettings


class QueueSettings(ServiceSettings):
    """The waiting room service."""
