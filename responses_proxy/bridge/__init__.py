"""
Pure Responses <-> Chat Completions conversion: no I/O, no Twisted imports.

The Twisted glue (L{responses_proxy.bridgeresource}) feeds these modules.
"""
