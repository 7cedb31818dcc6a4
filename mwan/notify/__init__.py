"""Notifications: each daemon event POSTed as one signed JSON document (issue 15).

:mod:`.message` builds the body, the signature and the headers (pure);
:mod:`.service` delivers them: asynchronous, bounded queue, timeout, bounded
retries with backoff.  The daemon starts the service only when the config
has ``config notify`` sections; aiohttp is imported only then.
"""
