"""
The only Twisted layer: the strict front, the leaves, the upstream client and the services.

Everything below C{responses_proxy.bridge} and the pure modules beside this package
(admission, headers, redact, replies, sse, config) does no I/O and is tested directly.
"""
