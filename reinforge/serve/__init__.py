"""The OpenAI-compatible service (``reinforge serve``, ``worker``, ``keys``): the ``serve`` extra.

A missing package of that extra stops the command with one line naming the extra, not a traceback."""

from reinforge.errors import ReinforgeError

try:
    import fastapi  # noqa: F401
    import sqlalchemy  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as e:
    raise ReinforgeError(
        f"the service needs the serve extra ({e.name} is not installed): pip install 'reinforge[serve]'"
    ) from None
