"""lossd: a Python client of the lossd daemon (standard library only).

    import lossd
    c = lossd.Client()                       # the socket lossctl would use
    job = c.submit("examples/digits.job.json")
    for ev in c.watch(job):
        print(ev["kind"], ev["data"])
    top = c.leaderboard(job, top=5)          # plain dicts; as_frame=True for pandas
    print(c.export(top[0], as_="pytorch"))

Errors the daemon answers with raise LossdError (code, message, data)."""
from .client import (TERMINAL_STATES, Client, LossdConnectionError, LossdError, default_socket,
                     flatten_entry, parse_candidate)

__version__ = "0.1.0"
__all__ = ["Client", "LossdError", "LossdConnectionError", "default_socket", "parse_candidate",
           "flatten_entry", "TERMINAL_STATES", "__version__"]
