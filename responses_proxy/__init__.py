"""
A strict local proxy for the OpenAI Responses API.

The key is read from stdin and injected upstream; everything but C{POST /v1/responses}
is refused. With C{--bridge-to-chat} the request and the stream are converted to and
from Chat Completions.
"""

__version__ = "0.1.0"
