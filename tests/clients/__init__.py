"""
Real Responses API clients the test suite runs against the proxy (see C{README.md}).
"""
