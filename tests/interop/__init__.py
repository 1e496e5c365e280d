"""
The interop suite: the bridge against real chat servers (LiteLLM's proxy,
llama-cpp-python's server, llama.cpp's C{llama-server}) installed from the package
registries by C{./scripts/interop}, which also runs it. See C{tests/interop/README.md}.
"""
