"""
The C{twistd responses-proxy} plugin.

Only a lazy L{ServiceMaker}: listing twistd's subcommands imports every plugin module,
so nothing here may import the reactor or the proxy itself.
"""

from twisted.application.service import ServiceMaker

responsesProxy = ServiceMaker(
    "codex-responses-api-proxy",
    "responses_proxy.tap",
    "Strict local proxy for POST /v1/responses (key read from stdin).",
    "responses-proxy",
)
