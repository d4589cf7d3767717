"""Runs LocalStack in host mode, listening on loopback only.

LocalStack 2026.3 builds its Twisted endpoint as TCP4ServerEndpoint(reactor, port) with no
interface (see the `TODO: interface = host?` in localstack/runtime/server/twisted.py), so it
binds 0.0.0.0 whatever GATEWAY_LISTEN says. This shim gives the endpoint the interface from
CAIRN_LISTEN_HOST (default 127.0.0.1) before LocalStack starts.
"""
import os
import runpy

from twisted.internet import endpoints

_host = os.environ.get("CAIRN_LISTEN_HOST", "127.0.0.1")
_original = endpoints.TCP4ServerEndpoint


class _LoopbackTCP4ServerEndpoint(_original):
    def __init__(self, reactor, port, backlog=50, interface=""):
        super().__init__(reactor, port, backlog, interface or _host)


endpoints.TCP4ServerEndpoint = _LoopbackTCP4ServerEndpoint
runpy.run_module("localstack.runtime.main", run_name="__main__")
